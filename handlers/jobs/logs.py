"""Live logs: while a run runs, its output goes to the log stream chunk by chunk, whatever the backend, so a
follower (the WorkflowApi, the dashboard) reads it from anywhere, across pending -> running, and from the start.

One shipper per site at a time (a lease). A follow per running attempt; after a restart (or a lost lease) a
follow goes on from what the stream already holds, and a chunk shipped twice carries the same message id, so
the stream keeps it once. The archive in the object store (the results handler) stays the record."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from events.subjects import LOG_CHUNK_BYTES
from handlers.context import HandlerContext
from ports.logs import LogSink
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs.logs")
LEASE_SECONDS = 10.0


def pieces(chunk: bytes, limit: int = LOG_CHUNK_BYTES) -> list[bytes]:
    """At most `limit` bytes each, cut after a newline where there is one, so lines mostly stay whole."""
    out: list[bytes] = []
    while len(chunk) > limit:
        cut = chunk.rfind(b"\n", 0, limit) + 1 or limit
        out.append(chunk[:cut])
        chunk = chunk[cut:]
    if chunk:
        out.append(chunk)
    return out


class LogShipper:
    def __init__(self, ctx: HandlerContext, sink: LogSink) -> None:
        self.ctx = ctx
        self.sink = sink
        self.follows: dict[tuple[str, int], asyncio.Task[int]] = {}

    async def pass_once(self, ctx: HandlerContext | None = None) -> int:
        """Start a follow for every running attempt of this site that has none; the number running."""
        compute = self.ctx.require_compute()
        leases = self.ctx.leases
        if leases is not None and not await leases.hold(f"jobs-logs:{compute.site}", self.ctx.holder, LEASE_SECONDS):
            await self.close()  # another replica ships now
            return 0
        for key, task in list(self.follows.items()):
            if task.done():
                del self.follows[key]
                if not task.cancelled() and (error := task.exception()) is not None:
                    log.warning("log follow failed; it starts again", run_id=key[0], attempt=key[1], error=repr(error))
        running = await self.ctx.store.find(RunDocument, states=[RunState.RUNNING], limit=10_000, site=compute.site)
        for run in running:
            key = (run.id, run.attempt)
            if key not in self.follows:
                self.follows[key] = asyncio.create_task(self.ship(run.id, run.attempt), name=f"log:{run.id}")
        return len(self.follows)

    async def ship(self, run_id: str, attempt: int) -> int:
        """Follow the attempt's output into the sink until the workload ends; the bytes shipped."""
        offset = await self.sink.shipped(run_id, attempt)
        if offset is None:
            return 0  # a later attempt runs already
        start = offset
        async for chunk in self.ctx.require_compute().follow_log(run_id, attempt=attempt, offset=offset):
            for piece in pieces(chunk):
                await self.sink.append(run_id, attempt, offset, piece)
                offset += len(piece)
        return offset - start

    async def close(self) -> None:
        for task in self.follows.values():
            task.cancel()
        for task in self.follows.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.follows.clear()
