"""edc.provision.requested: learn who the consumer is and which WorkflowAsset it bought, then deploy.

The request is handled once per transfer process: a re-sent copy finds the provision document and stops.
"""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.deployment import DeploymentRequested
from events.payloads.edc import EdcProvisionRequested
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.provisioning.common import deployment_id_for, target_to_store
from handlers.provisioning.failure import fail_provision
from handlers.provisioning.teardown import tell_deprovisioned
from ports.edc import (
    AgreementInfo,
    EdcCallbackRefused,
    EdcClient,
    EdcError,
    EdcNotConfigured,
    EdcNotFound,
    ProvisionTarget,
    TransferProcessInfo,
)
from schemas.provisioning import ProvisionDocument, ProvisionState
from schemas.tenancy import tenant_id

log = structlog.get_logger("gxwf.provisioning")


class _Refused(Exception):
    def __init__(self, step: str, reason: str, *, tell: bool = True) -> None:
        super().__init__(reason)
        self.step = step
        self.reason = reason
        # False when the connector cannot be told: its callback address is not one we may call.
        self.tell = tell


@on(EdcProvisionRequested, durable="provisioning-requested")
async def on_provision_requested(event: Envelope[EdcProvisionRequested], ctx: HandlerContext) -> None:
    request = event.data
    tp = request.transfer_process_id
    target = ProvisionTarget.of(request)
    created = await ctx.store.create(
        ProvisionDocument(
            id=tp,
            state=ProvisionState.REQUESTED,
            connector=request.connector,
            edc_asset_id=request.asset_id,
            callback_address=request.callback_address,
            target=target_to_store(target),
        ),
        event_id=event.id,
    )
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None:
        return
    if doc.connector != request.connector:
        # The transfer is another connector's: nothing of it is this connector's to provision or change.
        log.warning("provision request for another connector's transfer ignored", transfer=tp, by=request.connector)
        return
    if not created and (doc.state != ProvisionState.REQUESTED or doc.history[0].event_id != event.id):
        # Re-sent (or the deprovisioning overtook it): one provisioning per transfer.
        log.info("provision request already handled", transfer=tp, state=doc.state)
        if doc.target is None and doc.deprovision_requested:
            await _answer_early_deprovision(ctx, tp, target)
        return
    try:
        await _callback_allowed(ctx, target)
        transfer, agreement = await _learn(ctx, request)
        if not agreement.consumer_id:
            raise _Refused("negotiation", f"agreement {agreement.id} names no consumer")
        try:
            consumer = tenant_id(request.connector, agreement.consumer_id)
        except ValueError as error:
            raise _Refused("negotiation", f"agreement {agreement.id}: {error}") from None
        edc_asset = _agreed_asset(request, transfer, agreement)
        asset = await ctx.require_assets().for_edc_asset(edc_asset)
        if asset is None:
            raise _Refused("asset", f"unknown EDC asset id {edc_asset!r}: no WorkflowAsset maps to it")
    except _Refused as refused:
        await fail_provision(tp, ctx, step=refused.step, reason=refused.reason, cause=event.id, tell=refused.tell)
        return
    deployment_id = deployment_id_for(tp)
    moved = await ctx.store.transition(
        ProvisionDocument,
        tp,
        ProvisionState.DEPLOYING,
        event_id=event.id,
        fields={
            "consumer_id": consumer,
            "edc_consumer_id": agreement.consumer_id,
            "agreement_id": agreement.id,
            "edc_asset_id": edc_asset,
            "asset_id": asset.asset_id,
            "asset_version": asset.version,
            "deployment_id": deployment_id,
        },
    )
    if not moved.settled:
        return
    await ctx.emit(
        DeploymentRequested(
            deployment_id=deployment_id, transfer_process_id=tp, consumer_id=consumer, asset_id=asset.asset_id
        ),
        about=tp,
        cause=event,
    )


async def _answer_early_deprovision(ctx: HandlerContext, tp: str, target: ProvisionTarget) -> None:
    """A deprovision overtook this request: nobody was called then (the transfer was unknown). Its owner's
    provision request now says where it waits; answered once (the target stored first), if the address is
    allowed."""
    await ctx.store.set_fields(ProvisionDocument, tp, {"target": target_to_store(target)})
    await tell_deprovisioned(ctx, target)


async def _callback_allowed(ctx: HandlerContext, target: ProvisionTarget) -> None:
    """Before anything is built: a provisioning whose answer could not be sent is refused at once."""
    if ctx.edc is None:
        return  # refused at the negotiation step, with nobody told
    try:
        await ctx.edc.verify_callback(target)
    except EdcCallbackRefused as refused:
        raise _Refused("callback", str(refused), tell=False) from None


def _agreed_asset(request: EdcProvisionRequested, transfer: TransferProcessInfo, agreement: AgreementInfo) -> str:
    """The asset the agreement is for; a request or transfer naming another is refused, never served."""
    agreed = agreement.asset_id
    for source, named in (("request", request.asset_id), ("transfer", transfer.asset_id)):
        if agreed and named and named != agreed:
            raise _Refused(
                "asset", f"the {source} names asset {named!r} but agreement {agreement.id} is for {agreed!r}"
            )
    edc_asset = agreed or request.asset_id or transfer.asset_id
    if not edc_asset:
        raise _Refused("asset", "neither the request, the transfer nor the agreement names an asset")
    return edc_asset


async def _learn(ctx: HandlerContext, request: EdcProvisionRequested) -> tuple[TransferProcessInfo, AgreementInfo]:
    """The transfer and its agreement from the connector's management API. An agreement exists only for a
    finalized negotiation, so finding it is what allows the provisioning. A Data Plane Signaling start names
    them itself (the control plane sends it only for a finalized agreement): the management API, when one is
    configured, only cross-checks it."""
    edc = ctx.edc
    tp = request.transfer_process_id
    if edc is None:
        raise _Refused("negotiation", "no EDC connector is configured here to ask about the transfer")
    if request.generation == "dps":
        return await _from_start_message(edc, request)
    try:
        transfer = await edc.transfer_process(request.connector, tp)
        if not transfer.contract_id:
            raise _Refused("negotiation", f"transfer {tp} has no contract agreement")
        agreement = await edc.contract_agreement(request.connector, transfer.contract_id)
    except EdcNotFound as error:
        raise _Refused("negotiation", f"not finalized at the connector: {error}") from None
    except EdcError as error:
        # The client retried 5xx and network errors already; what is left will not heal by itself.
        raise _Refused("negotiation", f"connector's management API: {error}") from None
    return transfer, agreement


async def _from_start_message(
    edc: EdcClient, request: EdcProvisionRequested
) -> tuple[TransferProcessInfo, AgreementInfo]:
    tp = request.transfer_process_id
    if not request.agreement_id or not request.counter_party_id:
        raise _Refused("negotiation", "the start message names no agreement or no consumer")
    named = (
        TransferProcessInfo(id=tp, state="STARTING", asset_id=request.asset_id, contract_id=request.agreement_id),
        AgreementInfo(
            id=request.agreement_id, asset_id=request.asset_id, consumer_id=request.counter_party_id, provider_id=None
        ),
    )
    try:
        agreement = await edc.contract_agreement(request.connector, request.agreement_id)
    except EdcNotConfigured:
        return named
    except EdcNotFound as error:
        raise _Refused("negotiation", f"not finalized at the connector: {error}") from None
    except EdcError as error:
        raise _Refused("negotiation", f"connector's management API: {error}") from None
    if agreement.consumer_id and agreement.consumer_id != request.counter_party_id:
        raise _Refused(
            "negotiation",
            f"the start names consumer {request.counter_party_id!r} but agreement {agreement.id} is "
            f"{agreement.consumer_id!r}'s",
        )
    return named[0], agreement
