"""wf.run.pending: start the admitted run's workload on its backend, once, however often this arrives."""

from __future__ import annotations

from typing import Any

import structlog

from events.attempt import AheadOfState
from events.envelope import Envelope
from events.payloads.run import RunFailed, RunPending, RunRunning, RunSpec
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.jobs.ids import attempt_fact_id
from ports.compute import RunOwner, StartRefused
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


class RunNotAdmittedYet(AheadOfState):
    """wf.run.pending arrived and the store does not hold the admission it announces."""


@on(RunPending, durable="jobs-start-pending", per_site=True)
async def on_run_pending(event: Envelope[RunPending], ctx: HandlerContext) -> None:
    pending = event.data
    compute = ctx.require_compute()
    if pending.site != compute.site:
        return
    run = await ctx.store.get(RunDocument, pending.run_id)
    if run is None or (run.state == RunState.QUEUED and run.attempt <= pending.attempt):
        # The dispatcher records the admission before it announces it, so this is a store behind its facts (it
        # lost acknowledged writes): retried with backoff while `gxwf store rebuild` brings the run forward,
        # instead of being acked as nothing to do and leaving the rebuilt run pending for good.
        raise RunNotAdmittedYet(f"run {pending.run_id} attempt {pending.attempt} not recorded as pending yet")
    if run.state != RunState.PENDING or run.stop_requested or pending.attempt != run.attempt:
        # Already running or finished (a redelivery), stopped while waiting: nothing to start.
        return
    await ctx.faults.reach("jobs.before_start")
    parameters = {name: _env_value(value) for name, value in run.parameters.items()}
    owner = RunOwner(consumer_id=run.consumer_id, asset_id=run.asset_id, asset_version=run.asset_version)
    spec = RunSpec.model_validate(run.spec)
    try:
        handle = await compute.start(run.id, spec, parameters, attempt=run.attempt, owner=owner)
    except StartRefused as refused:
        await _fail(ctx, event, run, f"could not start: {refused}")
        return
    await ctx.faults.reach("jobs.after_start")
    current = await ctx.store.get(RunDocument, run.id)
    if current is not None and current.stop_requested:
        # A stop raced the start: it found nothing to kill, so end what was just started.
        await compute.stop(run.id)
        return
    await ctx.emit(
        RunRunning(
            run_id=run.id, consumer_id=run.consumer_id, backend=compute.name, handle=handle, attempt=run.attempt
        ),
        about=run.id,
        cause=event,
        event_id=attempt_fact_id(run.id, RunRunning, run.attempt),
    )


async def _fail(ctx: HandlerContext, event: Envelope[RunPending], run: RunDocument, reason: str) -> None:
    """The run ends failed now, with the backend's reason; the tracker records it like any other failure."""
    log.warning("run could not start", run_id=run.id, attempt=run.attempt, reason=reason)
    await ctx.emit(
        RunFailed(run_id=run.id, consumer_id=run.consumer_id, reason=reason[:1000]),
        about=run.id,
        cause=event,
        event_id=attempt_fact_id(run.id, RunFailed, run.attempt),
    )


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
