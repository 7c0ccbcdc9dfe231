"""Handlers that fail only because a server is away: retried in place until it is back, said once per outage.

An event's deliveries are bounded (then it is dead-lettered); a restart of NATS, the store or S3 must not spend
them, or an outage would fill the dead-letter stream with events that a retry fixes. So the handler is called
again, with a bounded wait between calls, while its message is kept alive by the caller's heartbeat. Handlers
are idempotent (they run again after any redelivery), so calling one again is what a redelivery would do.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog

log = structlog.get_logger("gxwf.delivery")

_WAITS: Final = (0.2, 0.5, 1.0, 2.0)


class ServerOutages:
    """Shared by a process's subscribers: the first handler to meet an outage says so, the last to get through
    says it is over."""

    def __init__(self, unreachable: Callable[[BaseException], bool] | None, patience: float) -> None:
        self._unreachable = unreachable
        self._patience = patience
        self._waiting = 0
        self._since: float | None = None

    async def wait_out(self, call: Callable[[], Awaitable[None]], handler: str) -> None:
        if self._unreachable is None:
            await call()
            return
        started = time.monotonic()
        tries = 0
        try:
            while True:
                try:
                    await call()
                    return
                except Exception as error:
                    if not self._unreachable(error) or time.monotonic() - started > self._patience:
                        raise
                    if tries == 0:
                        self._enter(handler, error)
                    await asyncio.sleep(_WAITS[min(tries, len(_WAITS) - 1)])
                    tries += 1
        finally:
            if tries:
                self._leave()

    def _enter(self, handler: str, error: BaseException) -> None:
        self._waiting += 1
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "a server is unreachable; handlers retry their events until it is back",
                handler=handler,
                error=repr(error),
            )

    def _leave(self) -> None:
        self._waiting -= 1
        if self._waiting == 0 and self._since is not None:
            log.info("handlers reach their servers again", after_seconds=round(time.monotonic() - self._since, 1))
            self._since = None
