"""wf.run.requested: create the run and hand it to the compute backend, once, however often it arrives."""

from __future__ import annotations

from typing import Any

import structlog

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event
from events.payloads.run import RunPending, RunRequested, RunRunning
from handlers.context import HandlerContext
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")
SOURCE = "urn:gaiax-workflows:jobs"


async def on_run_requested(event: Envelope[Any], ctx: HandlerContext) -> None:
    request: RunRequested = event.data
    compute = ctx.require_compute()
    run = RunDocument(
        id=request.run_id,
        state=RunState.PENDING,
        consumer_id=request.consumer_id,
        asset_id=request.asset_id,
        asset_version=request.asset_version,
        backend=compute.name,
        site=compute.site,
        spec=request.spec.model_dump(mode="json"),
        parameters=dict(request.parameters),
    )
    if not await ctx.store.create(run, event_id=event.id):
        existing = await ctx.store.get(RunDocument, request.run_id)
        if existing is None or not existing.history or existing.history[0].event_id != event.id:
            # Same run id, different request: never let one request overwrite or restart another's run.
            log.warning("run id already taken by another request", run_id=request.run_id, event_id=event.id)
            return
        if existing.state != RunState.PENDING:
            log.info("run already past pending, redelivery ignored", run_id=request.run_id, state=existing.state)
            return

    await ctx.events.publish(
        new_event(
            s.RUN_PENDING,
            RunPending(
                run_id=request.run_id,
                consumer_id=request.consumer_id,
                backend=compute.name,
                site=compute.site,
            ),
            id_=derived_id(request.run_id, s.RUN_PENDING),
            subject=request.run_id,
            correlationid=request.run_id,
            causationid=event.id,
            source=SOURCE,
        )
    )
    await ctx.faults.reach("jobs.before_start")
    parameters = {name: _env_value(value) for name, value in request.parameters.items()}
    handle = await compute.start(request.run_id, request.spec, parameters)
    await ctx.faults.reach("jobs.after_start")
    current = await ctx.store.get(RunDocument, request.run_id)
    if current is not None and current.stop_requested:
        # A stop raced the start: it found nothing to kill, so end what was just started.
        await compute.stop(request.run_id)
        return
    await ctx.events.publish(
        new_event(
            s.RUN_RUNNING,
            RunRunning(run_id=request.run_id, consumer_id=request.consumer_id, backend=compute.name, handle=handle),
            id_=derived_id(request.run_id, s.RUN_RUNNING),
            subject=request.run_id,
            correlationid=request.run_id,
            causationid=event.id,
            source=SOURCE,
        )
    )


def _env_value(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
