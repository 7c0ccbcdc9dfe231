"""wf.deployment.delete.requested: remove a consumer's WorkflowApi and everything around it, confirm it is gone,
and say so (wf.deployment.deleted). Only this handler talks to the sites' APIs, so only it needs their rights."""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.deployment import DeploymentDeleted, DeploymentDeleteRequested
from handlers.context import HandlerContext
from handlers.declare import on
from ports.deployments import DeploymentSpec
from schemas.provisioning import DeploymentDocument, DeploymentState

log = structlog.get_logger("gxwf.deployment")


@on(DeploymentDeleteRequested, durable="deployment-delete-requested")
async def on_delete_requested(event: Envelope[DeploymentDeleteRequested], ctx: HandlerContext) -> None:
    request = event.data
    dep = await ctx.store.get(DeploymentDocument, request.deployment_id)
    if dep is None:
        log.warning("delete requested for an unknown deployment", deployment=request.deployment_id)
        return
    if dep.state != DeploymentState.DELETED:
        await ctx.store.transition(
            DeploymentDocument, dep.id, DeploymentState.DELETING, event_id=event.id, reason=request.reason
        )
        await _delete(dep, ctx)
        deleted = await ctx.store.transition(DeploymentDocument, dep.id, DeploymentState.DELETED, event_id=event.id)
        if not deleted.settled:
            return
    # Also on a redelivery after the deletion was recorded: the provisioning may still wait for the fact.
    await ctx.emit(
        DeploymentDeleted(
            deployment_id=dep.id, transfer_process_id=dep.transfer_process_id, consumer_id=dep.consumer_id
        ),
        about=dep.id,
        cause=event,
        correlation=dep.transfer_process_id,
    )


async def _delete(dep: DeploymentDocument, ctx: HandlerContext) -> None:
    site = next((site for site in ctx.sites if site.name == dep.site), None)
    backend = ctx.deployments.get(site.backend) if site else None
    asset = None
    if dep.asset_id and dep.asset_version and ctx.assets is not None:
        asset = await ctx.assets.version(dep.asset_id, dep.asset_version)
    if site is not None and backend is not None and asset is not None:
        spec = DeploymentSpec(dep.id, dep.transfer_process_id, dep.consumer_id, asset, site)
        if not await backend.delete(spec):
            # Raised, so the bus redelivers with backoff (and dead-letters if it never goes).
            raise RuntimeError(f"deployment {dep.id}: still present after delete; retrying")
    elif dep.site is not None:
        log.warning("deployment's site or backend unknown here: nothing removed", deployment=dep.id, site=dep.site)
