"""wf.run.requested: accept the run into its site's queue, once, however often the request arrives."""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.run import RunQueued, RunRequested, RunSpec, spec_for_asset
from handlers.context import HandlerContext
from handlers.declare import on
from schemas.assets import FileInput, ParameterInput, reserved_env_name
from schemas.inputs import InputDocument, InputState
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


@on(RunRequested, durable="jobs-run-requested", per_site=True)
async def on_run_requested(event: Envelope[RunRequested], ctx: HandlerContext) -> None:
    request = event.data
    compute = ctx.require_compute()
    if request.site is not None and request.site != compute.site:
        return  # another site's jobs handlers take it (each site has its own durable consumer)
    spec, refused = await resolve(ctx, request)
    if spec is None:
        # Whoever published this could not have had it from the WorkflowApi: nothing of it runs.
        log.warning("run request refused", run_id=request.run_id, event_id=event.id, reason=refused)
        return
    run = queued_run(request, spec, backend=compute.name, site=compute.site, announced=False)
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


def queued_run(request: RunRequested, spec: RunSpec, *, backend: str, site: str, announced: bool) -> RunDocument:
    """The run document an accepted request becomes (also what `gxwf store rebuild` recreates)."""
    return RunDocument(
        id=request.run_id,
        state=RunState.QUEUED,
        consumer_id=request.consumer_id,
        transfer_process_id=request.transfer_process_id,
        asset_id=request.asset_id,
        asset_version=request.asset_version,
        backend=backend,
        site=site,
        spec=spec.model_dump(mode="json"),
        parameters=dict(request.parameters),
        announced=announced,
    )


async def resolve(ctx: HandlerContext, request: RunRequested) -> tuple[RunSpec | None, str]:
    """What the run executes: the catalogue's version of its asset (image, command, resources, limits), never what
    the event says, and only parameters that version declares, none of a reserved name. With ad-hoc runs allowed
    (development and tests), an asset the catalogue does not know runs the event's own spec."""
    asset = await ctx.assets.version(request.asset_id, request.asset_version) if ctx.assets is not None else None
    if asset is None:
        if ctx.adhoc_runs:
            reserved = sorted(n for n in [*request.parameters, *request.spec.env] if reserved_env_name(n))
            if reserved:
                return None, f"reserved environment names: {', '.join(reserved)}"
            return request.spec, ""
        return None, f"asset {request.asset_id} version {request.asset_version} is not in the catalogue"
    declared = {i.name for i in asset.definition.inputs if isinstance(i, ParameterInput)}
    undeclared = sorted(set(request.parameters) - declared)
    if undeclared:
        return None, f"parameters the asset does not declare: {', '.join(undeclared)}"
    files = {i.name: i for i in asset.definition.inputs if isinstance(i, FileInput)}
    for item in request.spec.inputs:
        # Staged from where the consumer's own upload is, to where the asset says: nothing of another consumer.
        doc = await ctx.store.get(InputDocument, item.input_id)
        wanted = files.get(item.name)
        if wanted is None or item.path != wanted.path or item.kind != wanted.kind:
            return None, f"input {item.name} is not one the asset declares"
        if doc is None or doc.consumer_id != request.consumer_id or doc.prefix != item.prefix:
            return None, f"input {item.input_id} is not an upload of consumer {request.consumer_id}"
        if doc.state != InputState.READY:
            return None, f"input {item.input_id} is {doc.state}, not ready"
    return spec_for_asset(asset, list(request.spec.inputs)), ""
