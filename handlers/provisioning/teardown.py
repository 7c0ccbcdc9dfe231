"""Deprovisioning: everything a transfer gave its consumer is removed, once, whichever trigger came first.

Triggers are a deprovision request and the transfer's end (completed or terminated). Both only flag the
provision; the teardown runs when the provisioning has settled (granted or failed), so a deprovision that
overtakes a provisioning in flight is honoured as soon as that provisioning ends.
"""

from __future__ import annotations

from typing import Any

import structlog

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event
from events.payloads.access import AccessRevoked
from events.payloads.consumer import ConsumerDeprovisioned
from events.payloads.deployment import DeploymentDeleted
from events.payloads.edc import EdcDeprovisionRequested, EdcTransferEvent
from events.payloads.run import RunStopRequested
from handlers.context import HandlerContext
from handlers.provisioning.common import SOURCE, target_from_store, target_to_store
from ports.deployments import DeploymentSpec
from ports.edc import EdcError, ProvisionTarget
from schemas.provisioning import (
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
)
from schemas.run import RunDocument

log = structlog.get_logger("gxwf.provisioning")

# A provision in one of these has settled: nothing is being built for it any more.
SETTLED = {ProvisionState.REQUESTED, ProvisionState.GRANTED, ProvisionState.FAILED}
_GONE = {ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED}


async def on_deprovision_requested(event: Envelope[Any], ctx: HandlerContext) -> None:
    request: EdcDeprovisionRequested = event.data
    tp = request.transfer_process_id
    doc = await ctx.store.get(ProvisionDocument, tp)
    stored = target_from_store(doc.target) if doc else None
    callback = _deprovision_target(request, stored)
    fields = {
        "deprovision_requested": True,
        "deprovision_reason": request.reason or "deprovision requested by the connector",
        "deprovision_callback": target_to_store(callback) if callback else None,
    }
    if doc is None:
        # Before any provision request: recorded so that a late provision request finds it ended.
        await ctx.store.create(
            ProvisionDocument(id=tp, state=ProvisionState.REQUESTED, connector=request.connector, **fields),
            event_id=event.id,
        )
    elif doc.state == ProvisionState.DEPROVISIONED:
        # Torn down already (the transfer's end came first): the connector still waits for this answer.
        if callback is not None:
            await _tell_deprovisioned(ctx, callback)
        return
    else:
        await ctx.store.set_fields(ProvisionDocument, tp, fields)
    await teardown_if_due(tp, ctx)


async def on_transfer_ended(event: Envelope[Any], ctx: HandlerContext) -> None:
    ended: EdcTransferEvent = event.data
    tp = ended.transfer_process_id
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None or doc.state in _GONE:
        return
    reason = f"transfer {ended.edc_type.removeprefix('TransferProcess').lower()}"
    if ended.reason:
        reason += f": {ended.reason}"
    await ctx.store.set_fields(ProvisionDocument, tp, {"deprovision_requested": True, "deprovision_reason": reason})
    await teardown_if_due(tp, ctx)


async def teardown_if_due(tp: str, ctx: HandlerContext) -> None:
    """Called after flagging a deprovision and after every provisioning settles: whichever runs second sees
    both the flag and the settled state, so the teardown is never missed."""
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None or not doc.deprovision_requested:
        return
    if doc.state in SETTLED or doc.state == ProvisionState.DEPROVISIONING:
        await teardown(doc, ctx)


async def teardown(doc: ProvisionDocument, ctx: HandlerContext) -> None:
    tp = doc.id
    # One id for every trigger: a second trigger, or a redelivery, repeats the same steps as no-ops.
    key = derived_id(tp, "teardown")
    reason = doc.deprovision_reason or "deprovisioned"
    started = await ctx.store.transition(
        ProvisionDocument, tp, ProvisionState.DEPROVISIONING, event_id=key, reason=reason
    )
    if not started.settled and started.state != ProvisionState.DEPROVISIONING:
        return
    await release(doc, ctx, key, reason)
    fresh = await ctx.store.get(ProvisionDocument, tp) or doc
    callback = target_from_store(fresh.deprovision_callback)
    if callback is not None:
        await _tell_deprovisioned(ctx, callback)
    done = await ctx.store.transition(ProvisionDocument, tp, ProvisionState.DEPROVISIONED, event_id=key, reason=reason)
    if done.settled:
        await ctx.events.publish(
            new_event(
                s.CONSUMER_DEPROVISIONED,
                ConsumerDeprovisioned(transfer_process_id=tp, consumer_id=doc.consumer_id, reason=reason),
                id_=derived_id(tp, s.CONSUMER_DEPROVISIONED),
                subject=tp,
                correlationid=tp,
                causationid=key,
                source=SOURCE,
            )
        )
        log.info("consumer deprovisioned", transfer=tp, reason=reason)


async def release(doc: ProvisionDocument, ctx: HandlerContext, key: str, reason: str) -> None:
    """Revoke the token, stop the consumer's runs, remove the deployment: also after a failed provisioning."""
    tp = doc.id
    revoked = await ctx.store.transition(AccessGrantDocument, tp, AccessState.REVOKED, event_id=key, reason=reason)
    if revoked.settled and doc.consumer_id:
        await _publish(
            ctx,
            s.ACCESS_REVOKED,
            AccessRevoked(transfer_process_id=tp, consumer_id=doc.consumer_id, reason=reason),
            tp,
            key,
        )
    if doc.consumer_id:
        await _stop_runs(doc, ctx, key, reason)
    if doc.deployment_id:
        await _remove_deployment(doc, ctx, key)


async def _stop_runs(doc: ProvisionDocument, ctx: HandlerContext, key: str, reason: str) -> None:
    consumer = doc.consumer_id
    others = await ctx.store.find(
        ProvisionDocument,
        states=[ProvisionState.DEPLOYING, ProvisionState.REGISTERING, ProvisionState.GRANTING, ProvisionState.GRANTED],
        consumer_id=consumer,
    )
    if any(other.id != doc.id for other in others):
        # Runs belong to the consumer, not to one transfer: another live transfer keeps them going.
        return
    live = [st for st in RunDocument.machine.transitions if st not in RunDocument.machine.terminal]
    for run in await ctx.store.find(RunDocument, states=live, consumer_id=consumer):
        await _publish(
            ctx,
            s.RUN_STOP_REQUESTED,
            RunStopRequested(run_id=run.id, consumer_id=run.consumer_id, reason=f"deprovisioned: {reason}"),
            run.id,
            key,
            id_=derived_id(doc.id, run.id, s.RUN_STOP_REQUESTED),
        )


async def _remove_deployment(doc: ProvisionDocument, ctx: HandlerContext, key: str) -> None:
    assert doc.deployment_id is not None
    dep = await ctx.store.get(DeploymentDocument, doc.deployment_id)
    if dep is None or dep.state == DeploymentState.DELETED:
        return
    await ctx.store.transition(DeploymentDocument, dep.id, DeploymentState.DELETING, event_id=key)
    site = next((site for site in ctx.sites if site.name == dep.site), None)
    backend = ctx.deployments.get(site.backend) if site else None
    asset = None
    if dep.asset_id and dep.asset_version and ctx.assets is not None:
        asset = await ctx.assets.version(dep.asset_id, dep.asset_version)
    if site is not None and backend is not None and asset is not None:
        spec = DeploymentSpec(dep.id, dep.transfer_process_id, dep.consumer_id, asset, site)
        if not await backend.delete(spec):
            raise RuntimeError(f"deployment {dep.id}: still present after delete; retrying")
    elif dep.site is not None:
        log.warning("deployment's site or backend unknown here: nothing removed", deployment=dep.id, site=dep.site)
    deleted = await ctx.store.transition(DeploymentDocument, dep.id, DeploymentState.DELETED, event_id=key)
    if deleted.settled:
        payload = DeploymentDeleted(deployment_id=dep.id, transfer_process_id=doc.id, consumer_id=dep.consumer_id)
        await _publish(ctx, s.DEPLOYMENT_DELETED, payload, doc.id, key)


async def _tell_deprovisioned(ctx: HandlerContext, target: ProvisionTarget, error: str | None = None) -> None:
    if ctx.edc is None:
        log.warning("no EDC connector configured: the connector is not told", transfer=target.transfer_process_id)
        return
    try:
        await ctx.edc.deprovisioned(target, error=error)
    except EdcError as failure:
        # Recorded in the EDC call log; what we removed stays removed whatever the connector answered.
        log.warning("connector not told of the deprovisioning", transfer=target.transfer_process_id, error=str(failure))


def _deprovision_target(request: EdcDeprovisionRequested, stored: ProvisionTarget | None) -> ProvisionTarget | None:
    if request.callback_address is not None:
        return ProvisionTarget.of(request)
    return stored


async def _publish(
    ctx: HandlerContext, subject: str, payload: Any, about: str, cause: str, *, id_: str | None = None
) -> None:
    await ctx.events.publish(
        new_event(
            subject,
            payload,
            id_=id_ or derived_id(about, subject),
            subject=about,
            correlationid=about,
            causationid=cause,
            source=SOURCE,
        )
    )
