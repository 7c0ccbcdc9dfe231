"""wf.run.requested: accept the run into its site's queue, once, however often the request arrives."""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.run import RunQueued, RunRequested
from handlers.context import HandlerContext
from handlers.declare import on
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


@on(RunRequested, durable="jobs-run-requested", per_site=True)
async def on_run_requested(event: Envelope[RunRequested], ctx: HandlerContext) -> None:
    request = event.data
    compute = ctx.require_compute()
    if request.site is not None and request.site != compute.site:
        return  # another site's jobs handlers take it (each site has its own durable consumer)
    run = RunDocument(
        id=request.run_id,
        state=RunState.QUEUED,
        consumer_id=request.consumer_id,
        transfer_process_id=request.transfer_process_id,
        asset_id=request.asset_id,
        asset_version=request.asset_version,
        backend=compute.name,
        site=compute.site,
        spec=request.spec.model_dump(mode="json"),
        parameters=dict(request.parameters),
        announced=False,
    )
    if not await ctx.store.create(run, event_id=event.id):
        existing = await ctx.store.get(RunDocument, request.run_id)
        if existing is None or not existing.history or existing.history[0].event_id != event.id:
            # Same run id, different request: never let one request overwrite or restart another's run.
            log.warning("run id already taken by another request", run_id=request.run_id, event_id=event.id)
            return
        if existing.state != RunState.QUEUED:
            return
    ahead = await ctx.store.count(RunDocument, states=[RunState.QUEUED], site=compute.site) - 1
    await ctx.emit(
        RunQueued(run_id=request.run_id, consumer_id=request.consumer_id, position=max(ahead, 0)),
        about=request.run_id,
        cause=event,
    )
    # Only now may the dispatcher admit it (also after a redelivery that finds it created but not announced).
    await ctx.store.set_fields(RunDocument, request.run_id, {"announced": True})
