"""One Slurm daemon as a child process: its own process group, a log file, stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack import logtail
from devstack.process import death_signal_setter


class Daemon:
    def __init__(self, name: str, process: subprocess.Popen[bytes], logs: dict[Path, int]) -> None:
        self.name = name
        # Each log file the daemon writes, from where this run of it began.
        self.logs = logs
        self._process = process

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        env: Mapping[str, str],
        user: str | None = None,
        group: str | None = None,
        own_log: Path | None = None,
    ) -> Daemon:
        """`own_log`: the file the daemon logs to itself (besides its output, which goes to `log_path`)."""
        logs = {path: path.stat().st_size if path.exists() else 0 for path in (log_path, own_log) if path}
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                user=user,
                group=group,
                # A Ctrl-C in the terminal reaches only the caller, which stops the cluster in order.
                process_group=0,
                # The kernel stops the daemon if the caller dies without cleaning up (SIGKILL). Set after the
                # switch to `user`, which would clear it.
                preexec_fn=death_signal_setter(signal.SIGTERM),
            )
        return cls(name, process, logs)

    @property
    def pid(self) -> int:
        return self._process.pid

    def exited(self) -> int | None:
        return self._process.poll()

    def log_text(self) -> str:
        """What this run of the daemon printed and logged."""
        return "".join(logtail.read_from(path, offset) for path, offset in self.logs.items())

    def log_summary(self) -> str:
        return logtail.summarize(self.log_text())

    def stop(self, grace: float) -> None:
        """SIGTERM to the daemon's process group, SIGKILL after `grace` seconds; the process is reaped."""
        if self._process.returncode is None:
            self._signal_group(signal.SIGTERM)
            if not self._exits_within(grace):
                self._signal_group(signal.SIGKILL)
                self._exits_within(grace)
            # Whatever the daemon forked into its group (slurmctld's slurmscriptd) goes with it. Sent while
            # the daemon is not yet reaped, so its pid, the group's id, cannot belong to anyone else.
            self._signal_group(signal.SIGKILL)
        self._process.wait()

    def _exits_within(self, seconds: float) -> bool:
        """Whether the daemon has exited within `seconds`; it is left unreaped (a zombie) until wait()."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                if os.waitid(os.P_PID, self._process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, sig)
