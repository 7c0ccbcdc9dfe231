"""wf.run.stop.requested: end the workload, confirm it is gone, then report the run stopped."""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.run import RunStopped, RunStopRequested
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.jobs.ids import attempt_fact_id
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


class StopNotConfirmed(Exception):
    """The workload outlived the stop; raising makes the bus retry the stop with backoff."""


@on(RunStopRequested, durable="jobs-stop-requested", per_site=True)
async def on_stop_requested(event: Envelope[RunStopRequested], ctx: HandlerContext) -> None:
    request = event.data
    run = await ctx.store.get(RunDocument, request.run_id)
    if run is None or run.consumer_id != request.consumer_id:
        # Another consumer's run answers as unknown: a guessed id must not stop someone else's work.
        log.warning("stop for an unknown run ignored", run_id=request.run_id, consumer_id=request.consumer_id)
        return
    if run.site is not None and run.site != ctx.require_compute().site:
        return  # the run's own site's jobs handlers stop it
    if run.state in RunDocument.machine.terminal:
        log.info("stop for a finished run ignored", run_id=run.id, state=run.state)
        return
    reason = request.reason or "stopped on request"
    await ctx.store.set_fields(RunDocument, run.id, {"stop_requested": reason})
    if run.state in (RunState.PENDING, RunState.RUNNING):
        await ctx.faults.reach("jobs.before_stop")
        if not await ctx.require_compute().stop(run.id):
            raise StopNotConfirmed(f"run {run.id}: processes still alive after the stop")
        await ctx.faults.reach("jobs.after_stop")
    await ctx.emit(
        RunStopped(run_id=run.id, consumer_id=run.consumer_id, reason=reason),
        about=run.id,
        cause=event,
        # The watcher reports the same stop when it sees the workload gone first: one id for both, so
        # JetStream keeps one fact and the results are collected once.
        event_id=attempt_fact_id(run.id, RunStopped, run.attempt),
    )
