"""How many log follows each consumer has open in this process: a follow holds a connection, a poll loop and a
log-stream consumer for as long as it lasts, so their number per consumer is capped."""

from __future__ import annotations

from collections import Counter


class FollowSlots:
    def __init__(self, per_consumer: int) -> None:
        self.per_consumer = per_consumer
        self._open: Counter[str] = Counter()

    def acquire(self, consumer_id: str) -> bool:
        if self._open[consumer_id] >= self.per_consumer:
            return False
        self._open[consumer_id] += 1
        return True

    def release(self, consumer_id: str) -> None:
        self._open[consumer_id] -= 1
        if self._open[consumer_id] <= 0:
            del self._open[consumer_id]

    def open(self, consumer_id: str) -> int:
        return self._open[consumer_id]
