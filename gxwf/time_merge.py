"""Several JetStream streams read at once, handed on in time order.

Each stream delivers its own messages in order (sequence and time agree within a stream), but two streams'
deliveries interleave however the network has it. An item may be handed on only once every stream that may
still deliver something older has a message waiting: a stream that is caught up (its last delivery said nothing
more is pending) cannot, so it never holds the others back, and live events pass at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Source(Generic[T]):
    waiting: deque[tuple[datetime, int, T]] = field(default_factory=deque)
    caught_up: bool = False


class TimeMerge(Generic[T]):
    """Items of `sources` streams, each added with its stream's store time and sequence, taken in time order."""

    def __init__(self, sources: int) -> None:
        self._sources = [_Source[T]() for _ in range(sources)]

    def add(self, source: int, time: datetime, sequence: int, item: T | None, *, pending: int) -> None:
        """A delivery of `source`; `item` None for one that is not shown (it still tells how far the source is),
        `pending` what the stream said is still to come after it."""
        state = self._sources[source]
        if item is not None:
            state.waiting.append((time, sequence, item))
        state.caught_up = pending == 0

    def caught_up(self, source: int) -> None:
        """The source has nothing to deliver (known from its consumer before any delivery)."""
        self._sources[source].caught_up = True

    @property
    def all_caught_up(self) -> bool:
        return all(s.caught_up for s in self._sources)

    @property
    def empty(self) -> bool:
        return not any(s.waiting for s in self._sources)

    def ready(self) -> Iterator[T]:
        """Every item that no source can still precede, oldest first (ties: the earlier source, then sequence)."""
        while True:
            if any(not s.waiting and not s.caught_up for s in self._sources):
                return
            heads = [(s.waiting[0][0], index, s.waiting[0][1]) for index, s in enumerate(self._sources) if s.waiting]
            if not heads:
                return
            _, index, _ = min(heads)
            yield self._sources[index].waiting.popleft()[2]
