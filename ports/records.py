"""What the WorkflowApi records itself, besides stateful documents: run starts (their Idempotency-Key) and the
removal of a consumer's input."""

from __future__ import annotations

from typing import Protocol

from schemas.run import RunRequestRecord


class ConsumerRecords(Protocol):
    async def record_run_request(self, request: RunRequestRecord) -> RunRequestRecord:
        """Store the start; when its run id is taken already, the start stored under it (which may differ)."""
        ...

    async def run_request(self, run_id: str) -> RunRequestRecord | None: ...

    async def delete_input(self, input_id: str) -> None:
        """The input's document (its objects are removed by the caller first)."""
        ...
