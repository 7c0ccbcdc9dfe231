"""Where a run's live output goes while it runs (the log stream), chunk by chunk."""

from __future__ import annotations

from typing import Protocol


class LogSink(Protocol):
    async def append(self, run_id: str, attempt: int, offset: int, chunk: bytes) -> None:
        """Store the chunk that starts at `offset` of the attempt's output; the same chunk twice is stored once."""
        ...

    async def shipped(self, run_id: str, attempt: int) -> int | None:
        """How many bytes of the attempt are stored already (where to go on after a restart); None when a later
        attempt has begun, so this one has nothing left to ship."""
        ...
