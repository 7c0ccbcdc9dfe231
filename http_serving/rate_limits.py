"""Token buckets per key (a connector, a client address, a user name), in this process.

A small bucket of our own rather than a rate-limiting library: each refusal must say when the next request would
be let through (the Retry-After of a 429), and the keys an attacker chooses (user names) must not grow memory
without bound. Replicas each keep their own buckets: the limit per replica is what one process can be made to
spend on one key.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """`rate` requests per second for each key, in bursts of up to `burst`; rate 0: no limit."""

    def __init__(
        self, rate: float, burst: float, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_keys = max_keys
        self.clock = clock
        # key -> (tokens left, when counted); least recently used first, so the oldest go when it is full.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when the request may go ahead (a token is taken); else the seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._remember(key, tokens - 1.0, now)
            return 0.0
        self._remember(key, tokens, now)
        return (1.0 - tokens) / self.rate

    def wait(self, key: str) -> float:
        """Like take, without taking: 0 when a token is there, else the seconds until one is."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _remember(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
