"""Restarting one embedded server of a running stack on the same ports and data, for the server faults: the
servers a chaos run starts are its own, so it restarts them itself (a supervising launcher would do the same)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from devstack import EmbeddedStack
from devstack.binaries import find_binary
from devstack.launcher import RunningServer
from devstack.process import ServerProcess


class ServerRestartFailed(Exception):
    pass


class StackServers:
    """The servers of `stack` by role (`nats`, `mongo`, `s3`)."""

    def __init__(self, stack: EmbeddedStack, ready_timeout: float = 60.0) -> None:
        self.stack = stack
        self.ready_timeout = ready_timeout

    def _running(self) -> list[RunningServer]:
        # The stack's own list: a restarted server replaces its entry, so the stack's stop stops the new process.
        servers: list[RunningServer] = self.stack._servers
        return servers

    def roles(self) -> list[str]:
        return [server.spec.role for server in self._running()]

    def pid(self, role: str) -> int:
        return self._find(role)[1].process.pid

    def _find(self, role: str) -> tuple[int, RunningServer]:
        for index, server in enumerate(self._running()):
            if server.spec.role == role:
                return index, server
        raise ServerRestartFailed(f"no {role} server in this stack")

    async def restart(self, role: str, *, kill: bool) -> float:
        """Stop the server (SIGKILL when `kill`, else SIGTERM with its grace), start it again on the same ports and
        data, wait until it does its job; the seconds from the stop until then."""
        index, server = self._find(role)
        began = time.monotonic()
        if kill:
            await server.process.kill()
        else:
            await server.process.terminate(server.spec.stop_grace)
        server.spec.cleanup(server.ports)
        state_dir = self.stack.state_dir
        assert state_dir is not None
        home = state_dir / server.spec.name
        server.spec.prepare(home, server.ports)
        process = await ServerProcess.spawn(
            server.spec.name,
            server.spec.argv(find_binary(server.spec.program), home, server.ports),
            cwd=home,
            log_path=state_dir / "logs" / f"{server.spec.name}.log",
            death_signal=server.spec.death_signal,
        )
        restarted = replace(server, process=process)
        self._running()[index] = restarted
        deadline = time.monotonic() + self.ready_timeout
        while (reason := await _probe(restarted)) is not None:
            if process.returncode is not None or time.monotonic() > deadline:
                raise ServerRestartFailed(
                    f"{server.spec.name} did not come back: {process.log_summary()} (last check: {reason})"
                )
            await asyncio.sleep(0.1)
        return time.monotonic() - began


async def _probe(server: RunningServer) -> str | None:
    try:
        return await server.spec.probe(server.ports)
    except Exception as error:  # a probe of a server still starting may fail any way
        return repr(error)
