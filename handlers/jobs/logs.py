"""Live logs: while a run runs, its output goes to the log stream chunk by chunk, whatever the backend, so a
follower (the WorkflowApi, the dashboard) reads it from anywhere, across pending -> running, and from the start.

One shipper per site at a time (a lease). A follow per running attempt; after a restart (or a lost lease) a
follow goes on from what the stream already holds, and a chunk shipped twice carries the same message id, so
the stream keeps it once. The archive in the object store (the results handler) stays the record."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from events.subjects import LOG_CHUNK_BYTES
from handlers.context import HandlerContext
from handlers.declare import every_loop
from ports.leases import LeaseLost
from ports.logs import LogSink
from schemas.names import log_shipper_lease
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs.logs")
LEASE_SECONDS = 10.0
# Longest pause before following again an attempt whose output could not be read yet.
IDLE_MAX_SECONDS = 10.0


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
        # A follow that found nothing (a pod still pulling its image) is tried again later and later, so a
        # thousand waiting pods do not cost the API a thousand reads every pass.
        self.idle: dict[tuple[str, int], tuple[float, float]] = {}

    async def pass_once(self, ctx: HandlerContext | None = None) -> int:
        """Start a follow for every running attempt of this site that has none; the number running."""
        compute = self.ctx.require_compute()
        leases = self.ctx.leases
        if leases is not None and not await leases.hold(
            log_shipper_lease(compute.site), self.ctx.holder, LEASE_SECONDS
        ):
            await self.close()  # another replica ships now
            return 0
        now = time.monotonic()
        for key, task in list(self.follows.items()):
            if task.done():
                del self.follows[key]
                shipped = 0
                if not task.cancelled() and isinstance(task.exception(), LeaseLost):
                    log.info("log follow ended: the lease moved", run_id=key[0], attempt=key[1])
                elif not task.cancelled() and (error := task.exception()) is not None:
                    log.warning("log follow failed; it starts again", run_id=key[0], attempt=key[1], error=repr(error))
                elif not task.cancelled():
                    shipped = task.result()
                pause = 0.0 if shipped else min(max(self.idle.get(key, (0.0, 0.25))[1] * 2, 0.5), IDLE_MAX_SECONDS)
                self.idle[key] = (now + pause, pause)
        running = await self.ctx.store.find(RunDocument, states=[RunState.RUNNING], limit=10_000, site=compute.site)
        live = {(run.id, run.attempt) for run in running}
        self.idle = {key: value for key, value in self.idle.items() if key in live}
        for run_id, attempt in live:
            key = (run_id, attempt)
            if key not in self.follows and self.idle.get(key, (0.0, 0.0))[0] <= now:
                self.follows[key] = asyncio.create_task(self.ship(run_id, attempt), name=f"log:{run_id}")
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


@every_loop(interval="log_ship_interval_seconds", name="jobs-log-shipper")
def log_shipper(ctx: HandlerContext) -> LogShipper:
    return LogShipper(ctx, ctx.require_logs())
