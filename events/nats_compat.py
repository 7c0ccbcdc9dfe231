"""nats-py 2.16's pull `fetch()` may end an empty wait with a bare `asyncio.TimeoutError` (its deadline check
before the lingering request), where FastStream 0.7.8's pull loop suppresses only `nats.errors.TimeoutError`.
The bare one escapes, FastStream's task supervisor logs a traceback and restarts the pull task. Raising the
error nats-py documents for `fetch()` keeps an idle subscriber quiet; drop this once either side agrees."""

from __future__ import annotations

import functools
from typing import Any

import nats.errors
from nats.js.client import JetStreamContext

_PullSubscription: Any = JetStreamContext.PullSubscription


def install() -> None:
    original = _PullSubscription.fetch
    if getattr(original, "_gxwf_compat", False):
        return

    @functools.wraps(original)
    async def fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except nats.errors.TimeoutError:
            raise
        except TimeoutError as error:
            raise nats.errors.TimeoutError from error

    fetch._gxwf_compat = True  # type: ignore[attr-defined]
    _PullSubscription.fetch = fetch
