"""The one life of every long-running command: start, serve until SIGINT or SIGTERM, stop what started."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack import EmbeddedStack

# Starts the services, pushing each one's stop onto the exit stack once it is started (or, for a service whose
# stop undoes a partial start, before). Returns False to stop at once instead of serving (a failed demo).
Starter = Callable[[contextlib.AsyncExitStack], Awaitable[bool | None]]


class StoppedWhileStarting(Exception):
    """SIGINT or SIGTERM came before everything was up; what had started is stopped by then."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum} while starting")
        self.signum = signum


async def serve_until_signalled(start: Starter | None = None, *, stack: EmbeddedStack | None = None) -> bool:
    """Run `start`, then serve until SIGINT or SIGTERM (or, given the embedded `stack`, until one of its servers
    dies: StackError), then stop everything `start` pushed, last started first, also when it failed midway.
    False when `start` said so."""
    from devstack.signals import StopSignals

    # Routed before anything starts: a signal during a long start-up (the demo) abandons it, rather than
    # killing the process with half its services up (SIGTERM's default) or waiting for the start to end.
    signals = StopSignals()
    signals.install()
    async with contextlib.AsyncExitStack() as services:
        try:
            if start is not None:
                starting = asyncio.ensure_future(start(services))
                signals.on_signal(starting.cancel)
                try:
                    serving = await starting
                except asyncio.CancelledError:
                    if signals.signum is None:
                        raise
                    raise StoppedWhileStarting(signals.signum) from None
                signals.clear_callbacks()
                if serving is False:
                    return False
            if stack is None:
                await signals.received.wait()
            else:
                await stack.wait_until_signalled(signals)
            return True
        finally:
            # Before the stops run: a second Ctrl-C then interrupts a stop that hangs, as Python's own handler does.
            signals.remove()
