"""wf.deployment.requested: place the consumer's WorkflowApi on a site that fits the asset, deploy it there,
and report it ready or failed (never left deploying)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event
from events.payloads.deployment import DeploymentFailed, DeploymentReady, DeploymentRequested
from handlers.context import HandlerContext
from ports.deployments import DeploymentError, DeploymentSpec
from schemas.assets import StoredAsset
from schemas.provisioning import DeploymentDocument, DeploymentState, ProvisionDocument
from schemas.sites import NoSiteFits, Site, place

log = structlog.get_logger("gxwf.deployment")
SOURCE = "urn:gaiax-workflows:deployment"
# Pause between attempts after an error the backend calls retryable (API 5xx, conflicts, timeouts).
RETRY_PAUSE = 0.5


async def on_deployment_requested(event: Envelope[Any], ctx: HandlerContext) -> None:
    request: DeploymentRequested = event.data
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
        await _ready(ctx, request, dep, event.id)
        return
    if dep.state == DeploymentState.FAILED:
        await _failed(ctx, request, dep.reason or "deployment failed", event.id)
        return
    if dep.state not in (DeploymentState.REQUESTED, DeploymentState.DEPLOYING):
        return
    assets = ctx.require_assets()
    asset = await (assets.version(request.asset_id, version) if version else assets.latest(request.asset_id))
    if asset is None:
        await _failed(ctx, request, f"asset {request.asset_id} version {version} is not in the catalogue", event.id)
        return
    try:
        site = _site(request, asset, ctx)
    except NoSiteFits as error:
        await _failed(ctx, request, str(error), event.id)
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
        await _failed(ctx, request, str(error), event.id)
        return
    done = await ctx.store.transition(
        DeploymentDocument, dep.id, DeploymentState.READY, event_id=event.id, fields={"workflow_api_url": url}
    )
    if done.settled:
        fresh = await ctx.store.get(DeploymentDocument, dep.id)
        if fresh is not None:
            await _ready(ctx, request, fresh, event.id)


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


async def _ready(ctx: HandlerContext, request: DeploymentRequested, dep: DeploymentDocument, cause: str) -> None:
    assert dep.site is not None and dep.backend is not None and dep.workflow_api_url is not None
    await ctx.events.publish(
        new_event(
            s.DEPLOYMENT_READY,
            DeploymentReady(
                deployment_id=dep.id,
                transfer_process_id=request.transfer_process_id,
                consumer_id=request.consumer_id,
                asset_id=request.asset_id,
                site=dep.site,
                backend=dep.backend,
                workflow_api_url=dep.workflow_api_url,
            ),
            id_=derived_id(dep.id, s.DEPLOYMENT_READY),
            subject=dep.id,
            correlationid=request.transfer_process_id,
            causationid=cause,
            source=SOURCE,
        )
    )


async def _failed(ctx: HandlerContext, request: DeploymentRequested, reason: str, cause: str) -> None:
    result = await ctx.store.transition(
        DeploymentDocument,
        request.deployment_id,
        DeploymentState.FAILED,
        event_id=cause,
        reason=reason,
        fields={"reason": reason},
    )
    if not result.settled:
        return
    log.warning("deployment failed", deployment=request.deployment_id, reason=reason)
    await ctx.events.publish(
        new_event(
            s.DEPLOYMENT_FAILED,
            DeploymentFailed(
                deployment_id=request.deployment_id,
                transfer_process_id=request.transfer_process_id,
                consumer_id=request.consumer_id,
                reason=reason,
            ),
            id_=derived_id(request.deployment_id, s.DEPLOYMENT_FAILED),
            subject=request.deployment_id,
            correlationid=request.transfer_process_id,
            causationid=cause,
            source=SOURCE,
        )
    )
