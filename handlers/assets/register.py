"""wf.deployment.ready: register the asset version the transfer bought with the consumer's WorkflowApi.

The WorkflowApi offers the versions listed in its deployment document; runs started later keep the version
registered here even when the definition changes meanwhile.
"""

from __future__ import annotations

from events.envelope import Envelope
from events.payloads.asset import AssetRegistered, AssetRegistrationFailed
from events.payloads.deployment import DeploymentReady
from handlers.context import HandlerContext
from handlers.declare import on
from schemas.provisioning import DeploymentDocument, DeploymentState


@on(DeploymentReady, durable="assets-deployment-ready")
async def on_deployment_ready(event: Envelope[DeploymentReady], ctx: HandlerContext) -> None:
    ready = event.data
    dep = await ctx.store.get(DeploymentDocument, ready.deployment_id)
    if dep is None or dep.state != DeploymentState.READY:
        return
    asset = None
    if dep.asset_version is not None:
        asset = await ctx.require_assets().version(ready.asset_id, dep.asset_version)
    tp = ready.transfer_process_id
    if asset is None:
        reason = f"asset {ready.asset_id} version {dep.asset_version} is not in the catalogue"
        await ctx.emit(
            AssetRegistrationFailed(
                transfer_process_id=tp, consumer_id=ready.consumer_id, asset_id=ready.asset_id, reason=reason
            ),
            about=dep.id,
            cause=event,
            correlation=tp,
        )
        return
    entry = {"asset_id": asset.asset_id, "version": asset.version}
    if entry not in dep.registered_assets:
        await ctx.store.set_fields(DeploymentDocument, dep.id, {"registered_assets": [*dep.registered_assets, entry]})
    await ctx.emit(
        AssetRegistered(
            transfer_process_id=tp,
            consumer_id=ready.consumer_id,
            deployment_id=dep.id,
            asset_id=asset.asset_id,
            asset_version=asset.version,
        ),
        about=dep.id,
        cause=event,
        key=(dep.id, asset.asset_id, str(asset.version)),
        correlation=tp,
    )
