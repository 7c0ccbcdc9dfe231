"""The provisioning's second half: asset registered (so its WorkflowApi is ready) -> access stored and sent to EDC.

wf.deployment.ready is the assets handler's alone: the provisioning waits for what follows it, so the flow reads
in one direction and no step has to make up for another that was slower."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

import structlog

from events.attempt import AheadOfState
from events.envelope import Envelope
from events.payloads.access import AccessGranted
from events.payloads.asset import AssetRegistered, AssetRegistrationFailed
from events.payloads.deployment import DeploymentFailed
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.provisioning.answering import answering, connector_is_past
from handlers.provisioning.common import target_from_store
from handlers.provisioning.failure import fail_provision
from handlers.provisioning.teardown import teardown_if_due
from ports.edc import AccessAddress, EdcCallbackRefused, EdcError, ProvisionTarget
from ports.store import Outcome
from schemas.dataflows import DataFlowDocument, DataFlowState
from schemas.provisioning import (
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    ProvisionDocument,
    ProvisionState,
)

log = structlog.get_logger("gxwf.provisioning")


@on(DeploymentFailed, durable="provisioning-deployment-failed")
async def on_deployment_failed(event: Envelope[DeploymentFailed], ctx: HandlerContext) -> None:
    failed = event.data
    await fail_provision(failed.transfer_process_id, ctx, step="deployment", reason=failed.reason, cause=event.id)


@on(AssetRegistrationFailed, durable="provisioning-asset-failed")
async def on_asset_registration_failed(event: Envelope[AssetRegistrationFailed], ctx: HandlerContext) -> None:
    failed = event.data
    await fail_provision(failed.transfer_process_id, ctx, step="asset", reason=failed.reason, cause=event.id)


@on(AssetRegistered, durable="provisioning-asset-registered")
async def on_asset_registered(event: Envelope[AssetRegistered], ctx: HandlerContext) -> None:
    registered = event.data
    tp = registered.transfer_process_id
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None:
        return
    moved = await ctx.store.transition(ProvisionDocument, tp, ProvisionState.GRANTING, event_id=event.id)
    if moved.state == ProvisionState.GRANTED and moved.outcome is Outcome.ALREADY_APPLIED:
        # Redelivered after the grant: publish its fact again (same id) in case the crash came before it.
        grant = await ctx.store.get(AccessGrantDocument, tp)
        if grant is not None:
            await _granted(ctx, tp, grant.consumer_id, grant.workflow_api_url, grant.token_sha256, event)
        return
    if moved.state != ProvisionState.GRANTING:
        return
    dep = await ctx.store.get(DeploymentDocument, registered.deployment_id)
    target = target_from_store(doc.target)
    if dep is None or dep.workflow_api_url is None or target is None or doc.consumer_id is None:
        await fail_provision(tp, ctx, step="callback", reason="deployment or callback address missing", cause=event.id)
        return
    async with answering(ctx, f"provision-answer:{tp}", f"transfer {tp}") as still_ours:
        fresh = await ctx.store.get(ProvisionDocument, tp)
        if fresh is None or fresh.state != ProvisionState.GRANTING:
            return
        grant_now = await ctx.store.get(AccessGrantDocument, tp)
        if (
            fresh.provision_answering == event.id
            and grant_now is not None
            and await connector_is_past(ctx, fresh, _ANSWERED)
        ):
            # A handler before this one called back and died before recording it: its token is the one sent.
            log.info("provisioning already answered before a takeover", transfer=tp)
            digest = grant_now.token_sha256
        else:
            sent = await _call_back(ctx, event, fresh, dep.workflow_api_url, target, still_ours)
            if sent is None:
                return
            digest = sent
        granted = await ctx.store.transition(ProvisionDocument, tp, ProvisionState.GRANTED, event_id=event.id)
    if granted.settled:
        await _granted(ctx, tp, doc.consumer_id, dep.workflow_api_url, digest, event)
        log.info("access granted", transfer=tp, consumer=doc.consumer_id)
    await teardown_if_due(tp, ctx)


async def _call_back(
    ctx: HandlerContext,
    event: Envelope[AssetRegistered],
    doc: ProvisionDocument,
    url: str,
    target: ProvisionTarget,
    still_ours: Callable[[], None],
) -> str | None:
    """A new token stored (hashed) and sent to the connector: its digest, or None when the provisioning failed."""
    registered = event.data
    tp = doc.id
    assert doc.consumer_id is not None
    # A fresh token on every attempt: one that never reached the connector is worth nothing, and only its
    # hash is kept, so a redelivered event could not resend the old one anyway.
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    grant = AccessGrantDocument(
        id=tp,
        state=AccessState.ACTIVE,
        transfer_process_id=tp,
        consumer_id=doc.consumer_id,
        token_sha256=digest,
        workflow_api_url=url,
        asset_ids=[registered.asset_id],
    )
    still_ours()
    if not await ctx.store.create(grant, event_id=event.id):
        await ctx.store.set_fields(AccessGrantDocument, tp, {"token_sha256": digest})
    access = AccessAddress(
        base_url=url,
        auth_code=f"Bearer {token}",
        extra={"consumerId": doc.edc_consumer_id or doc.consumer_id, "assetId": registered.asset_id},
    )
    try:
        if target.generation != "dps" or await _flow_started(ctx, tp, event.id):
            await ctx.store.set_fields(ProvisionDocument, tp, {"provision_answering": event.id})
            still_ours()
            await ctx.require_edc().provisioned(target, access, resource_name=f"gxwf-{tp}")
    except EdcError as error:
        refused = isinstance(error, EdcCallbackRefused)
        await fail_provision(tp, ctx, step="callback", reason=str(error), cause=event.id, tell=not refused)
        return None
    return digest


# Where a connector's transfer is once our provision callback reached it.
_ANSWERED = frozenset(
    {"PROVISIONED", "REQUESTING", "REQUESTED", "STARTING", "STARTED", "SUSPENDING", "SUSPENDED", "RESUMING",
     "COMPLETING", "COMPLETED", "TERMINATING", "TERMINATED", "DEPROVISIONING", "DEPROVISIONED"}
)  # fmt: skip


async def _granted(
    ctx: HandlerContext, tp: str, consumer: str, url: str, digest: str, cause: Envelope[AssetRegistered]
) -> None:
    await ctx.emit(
        AccessGranted(transfer_process_id=tp, consumer_id=consumer, workflow_api_url=url, token_fingerprint=digest[:8]),
        about=tp,
        cause=cause,
    )


async def _flow_started(ctx: HandlerContext, tp: str, event_id: str) -> bool:
    """The data flow is STARTED before the control plane hears of it, so a suspend sent right after the callback
    finds it so (a failed callback ends it TERMINATED). A flow the control plane ended before it started is not
    told: its teardown follows once the provisioning settles. Redelivered: started by this event already."""
    moved = await ctx.store.transition(DataFlowDocument, tp, DataFlowState.STARTED, event_id=event_id)
    if moved.outcome is Outcome.MISSING:
        # The ingress stores the flow before it publishes the start; an older ingress stored it right after.
        raise AheadOfState(f"data flow {tp} not stored yet")
    return moved.settled
