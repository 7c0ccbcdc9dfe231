"""The server faults' side of the embedded stack: a server of a running stack stopped (SIGKILL, or SIGTERM with its
grace), and the time until it is back on the same ports with its data. The stack's own supervision brings it back
(`EmbeddedStack.wait_until_signalled` with a restart policy), as it would under `gxwf up`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from devstack import EmbeddedStack
from devstack.launcher import RunningServer
from devstack.restarts import RestartPolicy
from devstack.signals import StopSignals

# The faults restart servers on purpose and often: the stack may bring each back as often as a run injects.
CHAOS_RESTARTS = RestartPolicy(delays=(0.2, 0.5, 1.0, 2.0), limit=1000, window_seconds=60.0)


class ServerRestartFailed(Exception):
    pass


class StackServers:
    """The servers of `stack` by role (`nats` or `nats-1`..`nats-N` on a cluster, `mongo`, `s3`), supervised while
    `supervising()` is entered."""

    def __init__(self, stack: EmbeddedStack, ready_timeout: float = 90.0) -> None:
        self.stack = stack
        self.ready_timeout = ready_timeout
        self._signals = StopSignals()
        self._supervisor: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def supervising(self) -> AsyncIterator[None]:
        self._supervisor = asyncio.create_task(self.stack.wait_until_signalled(self._signals), name="chaos-supervisor")
        try:
            yield
        finally:
            self._signals.received.set()
            with contextlib.suppress(Exception):
                await self._supervisor

    def _running(self) -> list[RunningServer]:
        # The stack's own list: its supervisor replaces a restarted server's entry there.
        servers: list[RunningServer] = self.stack._servers
        return servers

    def roles(self) -> list[str]:
        return [server.spec.role for server in self._running()]

    def pid(self, role: str) -> int:
        return self._find(role).process.pid

    def _find(self, role: str) -> RunningServer:
        for server in self._running():
            if server.spec.role == role:
                return server
        raise ServerRestartFailed(f"no {role} server in this stack")

    async def restart(self, role: str, *, kill: bool) -> float:
        """Stop the server (SIGKILL when `kill`, else SIGTERM with its grace) and wait until the stack's supervisor
        has it back and doing its job; the seconds from the stop until then."""
        if self._supervisor is None or self._supervisor.done():
            why = self._supervisor.exception() if self._supervisor is not None and self._supervisor.done() else None
            raise ServerRestartFailed(f"the stack is not supervising its servers ({why or 'not started'})")
        server = self._find(role)
        began = time.monotonic()
        if kill:
            await server.process.kill()
        else:
            await server.process.terminate(server.spec.stop_grace)
        deadline = began + self.ready_timeout
        while True:
            current = self._find(role)
            if current.process is not server.process and current.process.returncode is None:
                reason = await _probe(current)
                if reason is None:
                    return time.monotonic() - began
            if self._supervisor.done() or time.monotonic() > deadline:
                gave_up = self._supervisor.exception() if self._supervisor.done() else None
                raise ServerRestartFailed(f"{server.spec.name} did not come back: {gave_up or 'not back in time'}")
            await asyncio.sleep(0.1)


async def _probe(server: RunningServer) -> str | None:
    try:
        return await server.spec.probe(server.ports)
    except Exception as error:  # a probe of a server still starting may fail any way
        return repr(error)
