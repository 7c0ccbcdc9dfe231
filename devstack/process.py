"""One server as a child process: spawned so it cannot outlive us, logged to a file, stopped firmly."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack import logtail
from devstack.errors import StackError

_PR_SET_PDEATHSIG = 1


def death_signal_setter(death_signal: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel signal the child when its parent dies, or None off Linux.

    This is what keeps servers from outliving a parent killed with SIGKILL, which runs no cleanup. The
    kernel sends the signal when the *thread* that forked exits, so spawn from the event loop's thread.
    """
    if sys.platform != "linux":
        return None
    # Looked up before the fork: the child should only make the system call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, int(death_signal), 0, 0, 0)
        # The parent may have died between fork and prctl, and then no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


class ServerProcess:
    """A running server. Its output goes to a log file; this run's part of it can be summarised."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log_path: Path, log_offset: int) -> None:
        self.name = name
        self.log_path = log_path
        self._process = process
        self._log_offset = log_offset

    @classmethod
    async def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        death_signal: signal.Signals = signal.SIGTERM,
    ) -> ServerProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Appended, not truncated: the log of the previous run is often what explains this one.
        with log_path.open("ab") as log:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            log.write(f"--- devstack {stamp}: {shlex.join(argv)}\n".encode())
            log.flush()
            offset = log.tell()
            try:
                process = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=cwd,
                    # Its own process group: a Ctrl-C in the terminal reaches only us, and we stop the
                    # servers in order, instead of every server getting SIGINT at once.
                    process_group=0,
                    preexec_fn=death_signal_setter(death_signal),
                )
            except OSError as error:
                reason = error.strerror or str(error)
                raise StackError(f"{name} could not be started ({argv[0]}): {reason}") from None
        return cls(name, process, log_path, offset)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    async def wait(self) -> int:
        return await self._process.wait()

    def log_summary(self) -> str:
        """The telling lines this run has logged so far, on one line."""
        return logtail.summarize(logtail.read_from(self.log_path, self._log_offset))

    def log_text(self) -> str:
        return logtail.read_from(self.log_path, self._log_offset)

    async def terminate(self, grace: float) -> None:
        """SIGTERM to the server's process group, then SIGKILL if it is still there after `grace` seconds."""
        if self._process.returncode is None:
            self._signal_group(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._process.wait(), grace)
            except TimeoutError:
                pass
            finally:
                # Also when cancelled: a stop that is abandoned half-way must not leave the server running.
                if self._process.returncode is None:
                    self._signal_group(signal.SIGKILL)
        await self._process.wait()

    async def kill(self) -> None:
        """SIGKILL to the server's process group, for a server whose data needs no graceful stop."""
        if self._process.returncode is None:
            self._signal_group(signal.SIGKILL)
        await self._process.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        # The group id is the server's pid (process_group=0); the group also holds anything it forked.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, sig)
