"""Which Debian packages the cluster needs, and one message naming the missing ones."""

from __future__ import annotations

import glob
import os
import shutil

# Program -> the Debian package that ships it.
_PROGRAMS = {
    "munged": "munge",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "slurmrestd": "slurmrestd",
    "scontrol": "slurm-client",
    "sinfo": "slurm-client",
    "squeue": "slurm-client",
    "scancel": "slurm-client",
}
# slurmrestd's JWT authentication is a plugin of its own package, missing from a plain Slurm install.
_JWT_PLUGIN_GLOBS = (
    "/usr/lib/*/slurm-wlm/auth_jwt.so",
    "/usr/lib/slurm-wlm/auth_jwt.so",
    "/usr/lib*/slurm/auth_jwt.so",
)
_JWT_PLUGIN_PACKAGE = "slurm-wlm-jwt-plugin"
REQUIRED_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge", "slurmrestd", _JWT_PLUGIN_PACKAGE)
# Daemons and CLI tools live in sbin and bin; PATH of a non-login root shell may lack sbin.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


class SlurmUnavailable(Exception):
    """Slurm cannot run here: packages are missing or the caller is not root. The message says what to do."""


def find_programs(search_path: str | None = None, plugin_globs: tuple[str, ...] | None = None) -> dict[str, str]:
    """Program name -> path of every program the cluster runs; raises SlurmUnavailable naming what to install."""
    found = {program: shutil.which(program, path=search_path or _SEARCH_PATH) for program in _PROGRAMS}
    missing = {_PROGRAMS[program] for program, path in found.items() if path is None}
    if not any(glob.glob(pattern) for pattern in plugin_globs or _JWT_PLUGIN_GLOBS):
        missing.add(_JWT_PLUGIN_PACKAGE)
    if missing:
        names = " ".join(package for package in REQUIRED_PACKAGES if package in missing)
        raise SlurmUnavailable(
            f"Slurm is not installed (missing Debian packages: {names}); install them with "
            f"`apt-get install --no-install-recommends {' '.join(REQUIRED_PACKAGES)}`"
        )
    if os.geteuid() != 0:
        raise SlurmUnavailable("the local Slurm cluster runs its daemons as root: run this as root")
    return {program: path for program, path in found.items() if path is not None}
