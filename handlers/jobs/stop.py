"""wf.run.stop.requested: end the workload, confirm it is gone, then report the run stopped."""

from __future__ import annotations

from typing import Any

import structlog

from events import subjects as s
from events.envelope import Envelope, new_event
from events.payloads.run import RunStopped, RunStopRequested
from handlers.context import HandlerContext
from handlers.jobs.ids import attempt_fact_id
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")
SOURCE = "urn:gaiax-workflows:jobs"


class StopNotConfirmed(Exception):
    """The workload outlived the stop; raising makes the bus retry the stop with backoff."""


async def on_stop_requested(event: Envelope[Any], ctx: HandlerContext) -> None:
    request: RunStopRequested = event.data
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
    await ctx.events.publish(
        new_event(
            s.RUN_STOPPED,
            RunStopped(run_id=run.id, consumer_id=run.consumer_id, reason=reason),
            # The watcher reports the same stop when it sees the workload gone first: one id for both, so
            # JetStream keeps one fact and the results are collected once.
            id_=attempt_fact_id(run.id, s.RUN_STOPPED, run.attempt),
            subject=run.id,
            correlationid=run.id,
            causationid=event.id,
            source=SOURCE,
        )
    )
