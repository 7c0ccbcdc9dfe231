"""wf.deployment.requested: place the consumer's WorkflowApi on a site that fits the asset, deploy it there,
and report it ready or failed (never left deploying)."""

from __future__ import annotations

import asyncio

import structlog

from events.envelope import Envelope
from events.payloads.deployment import DeploymentFailed, DeploymentReady, DeploymentRequested
from handlers.context import HandlerContext
from handlers.declare import on
from ports.deployments import DeploymentError, DeploymentSpec
from schemas.assets import StoredAsset
from schemas.provisioning import DeploymentDocument, DeploymentState, ProvisionDocument
from schemas.sites import NoSiteFits, Site, place

log = structlog.get_logger("gxwf.deployment")
# Pause between attempts after an error the backend calls retryable (API 5xx, conflicts, timeouts).
RETRY_PAUSE = 0.5


@on(DeploymentRequested, durable="deployment-requested")
async def on_deployment_requested(event: Envelope[DeploymentRequested], ctx: HandlerContext) -> None:
    request = event.data
    provision = await ctx.store.get(ProvisionDocument, request.transfer_process_id)
    version = provision.asset_version if provision else None
    await ctx.store.create(
        DeploymentDocument(
            id=request.deployment_id,
            state=DeploymentState.REQUESTED,
            transfer_process_id=request.transfer_process_id,
            consumer_id=request.consumer_id,
            asset_id=request.asset_id,
            asset_version=version,
        ),
        event_id=event.id,
    )
    dep = await ctx.store.get(DeploymentDocument, request.deployment_id)
    if dep is None:
        return
    # A redelivery after the outcome was recorded publishes it again (same id): a crash between the two
    # must not leave the provisioning waiting.
    if dep.state == DeploymentState.READY:
        await _ready(ctx, dep, event)
        return
    if dep.state == DeploymentState.FAILED:
        await _failed(ctx, dep.reason or "deployment failed", event)
        return
    if dep.state not in (DeploymentState.REQUESTED, DeploymentState.DEPLOYING):
        return
    assets = ctx.require_assets()
    asset = await (assets.version(request.asset_id, version) if version else assets.latest(request.asset_id))
    if asset is None:
        await _failed(ctx, f"asset {request.asset_id} version {version} is not in the catalogue", event)
        return
    try:
        site = _site(request, asset, ctx)
    except NoSiteFits as error:
        await _failed(ctx, str(error), event)
        return
    backend = ctx.deployments[site.backend]
    moved = await ctx.store.transition(
        DeploymentDocument,
        dep.id,
        DeploymentState.DEPLOYING,
        event_id=event.id,
        fields={"site": site.name, "backend": backend.name},
    )
    if moved.state != DeploymentState.DEPLOYING:
        return
    spec = DeploymentSpec(dep.id, request.transfer_process_id, request.consumer_id, asset, site)
    try:
        url = await _deploy_within(ctx, spec)
    except DeploymentError as error:
        await _failed(ctx, str(error), event)
        return
    done = await ctx.store.transition(
        DeploymentDocument, dep.id, DeploymentState.READY, event_id=event.id, fields={"workflow_api_url": url}
    )
    if done.settled:
        fresh = await ctx.store.get(DeploymentDocument, dep.id)
        if fresh is not None:
            await _ready(ctx, fresh, event)


def _site(request: DeploymentRequested, asset: StoredAsset, ctx: HandlerContext) -> Site:
    sites = list(ctx.sites)
    if request.site is not None:
        sites = [site for site in sites if site.name == request.site]
        if not sites:
            raise NoSiteFits(f"no site named {request.site!r} is configured")
    definition = asset.definition
    return place(definition.resources, definition.data_labels, sites, available=set(ctx.deployments))


async def _deploy_within(ctx: HandlerContext, spec: DeploymentSpec) -> str:
    """Retryable errors are retried until the deadline; then the deployment fails with the last one."""
    backend = ctx.deployments[spec.site.backend]
    last: DeploymentError | None = None
    try:
        async with asyncio.timeout(ctx.deploy_timeout):
            while True:
                await ctx.faults.reach("deployment.deploy")
                try:
                    return await backend.deploy(spec)
                except DeploymentError as error:
                    if not error.retryable:
                        raise
                    last = error
                    log.info("deployment retried", deployment=spec.deployment_id, error=str(error))
                    await asyncio.sleep(RETRY_PAUSE)
    except TimeoutError:
        detail = f" (last error: {last})" if last else ""
        raise DeploymentError(f"not ready within {ctx.deploy_timeout:g}s on site {spec.site.name}{detail}") from None


async def _ready(ctx: HandlerContext, dep: DeploymentDocument, cause: Envelope[DeploymentRequested]) -> None:
    assert dep.site is not None and dep.backend is not None and dep.workflow_api_url is not None
    request = cause.data
    await ctx.emit(
        DeploymentReady(
            deployment_id=dep.id,
            transfer_process_id=request.transfer_process_id,
            consumer_id=request.consumer_id,
            asset_id=request.asset_id,
            site=dep.site,
            backend=dep.backend,
            workflow_api_url=dep.workflow_api_url,
        ),
        about=dep.id,
        cause=cause,
        correlation=request.transfer_process_id,
    )


async def _failed(ctx: HandlerContext, reason: str, cause: Envelope[DeploymentRequested]) -> None:
    request = cause.data
    result = await ctx.store.transition(
        DeploymentDocument,
        request.deployment_id,
        DeploymentState.FAILED,
        event_id=cause.id,
        reason=reason,
        fields={"reason": reason},
    )
    if not result.settled:
        return
    log.warning("deployment failed", deployment=request.deployment_id, reason=reason)
    await ctx.emit(
        DeploymentFailed(
            deployment_id=request.deployment_id,
            transfer_process_id=request.transfer_process_id,
            consumer_id=request.consumer_id,
            reason=reason,
        ),
        about=request.deployment_id,
        cause=cause,
        correlation=request.transfer_process_id,
    )
