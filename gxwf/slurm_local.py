"""The local Slurm cluster of `gxwf slurm up` and `gxwf up --slurm`: where it lives, starting it with a one-line
error when Slurm is not installed, what it prints, and its token kept fresh while it runs."""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gxwf.errors import UserError

if TYPE_CHECKING:
    from devstack.slurm import SlurmCluster

TOKEN_LIFESPAN_SECONDS = 3600


def cluster_directory(state_dir: Path) -> tuple[Path, str | None]:
    """A new directory for a cluster under STATE_DIR/slurm (a cluster never reuses one), and a note when it had to
    go under /tmp instead: slurmrestd runs as user nobody, who must be able to enter it."""
    from devstack.slurm import closed_ancestor

    name = f"cluster-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    base = state_dir.absolute() / "slurm"
    closed = closed_ancestor(base / name)
    if closed is None:
        return base / name, None
    fallback = Path(tempfile.mkdtemp(prefix="gxwf-slurm-"))
    fallback.chmod(0o755)
    note = f"{closed} is closed to other users (slurmrestd runs as nobody), so the cluster is in {fallback}"
    return fallback / name, note


def start_local_slurm(state_dir: Path, *, cpus: int = 16, gpus: int = 2) -> tuple[SlurmCluster, str | None]:
    """The started cluster and the note of cluster_directory; Slurm not installed: UserError naming the packages.

    Blocks for about a second; call it from the event loop's thread, which also stops the cluster (the daemons
    get SIGTERM from the kernel when the thread that started them ends)."""
    from devstack.slurm import SlurmUnavailable, start_slurm

    check_installed()  # before a directory is made for it
    directory, note = cluster_directory(state_dir)
    try:
        cluster = start_slurm(directory, cpus=cpus, gpus=gpus, token_lifespan_seconds=TOKEN_LIFESPAN_SECONDS)
    except SlurmUnavailable as error:
        raise UserError(str(error)) from None
    return cluster, note


def describe(cluster: SlurmCluster) -> list[tuple[str, str]]:
    """What a person needs to use the cluster, as (what, value) rows."""
    renew = TOKEN_LIFESPAN_SECONDS // 2 // 60
    return [
        ("rest url", cluster.rest_url),
        ("api version", cluster.api_version),
        ("user", cluster.user),
        ("token file", f"{cluster.token_file} (mode 0600; a new token every {renew} min, each valid 1 h)"),
        ("jwt key", f"{cluster.jwt_key} (HS256: whoever reads it can mint tokens)"),
        ("SLURM_CONF", f"{cluster.slurm_conf} (export it for sinfo, squeue, sbatch, scontrol)"),
        ("partition", cluster.partition),
        ("node", f"{cluster.cpus} CPUs, {cluster.gpus} GPUs (gres gpu, no device), {cluster.memory_mb} MB"),
        ("jobs dir", str(cluster.jobs_dir)),
    ]


async def keep_token_fresh(cluster: SlurmCluster) -> None:
    """Rewrite the token file at half the token's lifespan, until cancelled, so a reader never finds it expired."""
    while True:
        await asyncio.sleep(TOKEN_LIFESPAN_SECONDS / 2)
        await asyncio.to_thread(cluster.mint_token, TOKEN_LIFESPAN_SECONDS)


def check_installed() -> None:
    """Before anything starts: Slurm's packages are there (UserError naming the missing ones otherwise)."""
    from devstack.slurm import SlurmUnavailable
    from devstack.slurm.packages import find_programs

    try:
        find_programs()
    except SlurmUnavailable as error:
        raise UserError(str(error)) from None
