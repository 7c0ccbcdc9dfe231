"""Where a run's live output goes while it runs (the log stream), chunk by chunk, and how it is read back."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol


class LogSink(Protocol):
    async def append(self, run_id: str, attempt: int, offset: int, chunk: bytes) -> None:
        """Store the chunk that starts at `offset` of the attempt's output; the same chunk twice is stored once."""
        ...

    async def shipped(self, run_id: str, attempt: int) -> int | None:
        """How many bytes of the attempt are stored already (where to go on after a restart); None when a later
        attempt has begun, so this one has nothing left to ship."""
        ...


class LogReader(Protocol):
    """What the log stream holds of a run, for those who show it (the WorkflowApi, the dashboard): every attempt
    in order, each after the first behind schemas.names.attempt_separator, as the archived log has them, so that
    a byte offset means the same in both."""

    def read(self, run_id: str, *, offset: int = 0, idle_seconds: float = 0.3) -> AsyncGenerator[bytes, None]:
        """The run's log from byte `offset` on, as far as it is stored: ends once nothing new arrived for
        `idle_seconds`."""
        ...

    def follow(self, run_id: str, *, offset: int = 0, idle_seconds: float) -> AsyncGenerator[bytes | None, None]:
        """As `read`, but goes on waiting: None each time nothing new arrived for `idle_seconds`, so the caller
        can judge whether the run ended. Leaving the loop (or closing the iterator) ends the read."""
        ...
