"""Deprovisioning: everything a transfer gave its consumer is removed, once, whichever trigger came first.

Triggers are a deprovision request and the transfer's end (completed or terminated). Both only flag the
provision; the teardown runs when the provisioning has settled (granted or failed), so a deprovision that
overtakes a provisioning in flight is honoured as soon as that provisioning ends.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import structlog

from events.envelope import Envelope, derived_id
from events.payloads.access import AccessRevoked
from events.payloads.consumer import ConsumerDeprovisioned
from events.payloads.deployment import DeploymentDeleted, DeploymentDeleteRequested
from events.payloads.edc import (
    EdcDeprovisionRequested,
    EdcTransferCompleted,
    EdcTransferEvent,
    EdcTransferTerminated,
)
from events.payloads.run import RunStopRequested
from handlers.context import HandlerContext
from handlers.declare import on
from handlers.provisioning.answering import AnswerInProgress, answering, connector_is_past
from handlers.provisioning.common import target_from_store, target_to_store
from ports.edc import EdcError, ProvisionTarget
from schemas.provisioning import (
    LIVE,
    SETTLED,
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
)
from schemas.run import RunDocument

log = structlog.get_logger("gxwf.provisioning")

# Another handler is answering the connector for this transfer: retried, then finds it deprovisioned.
TeardownFinishing = AnswerInProgress


_GONE = {ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED}


@on(EdcDeprovisionRequested, durable="provisioning-deprovision-requested")
async def on_deprovision_requested(event: Envelope[EdcDeprovisionRequested], ctx: HandlerContext) -> None:
    request = event.data
    tp = request.transfer_process_id
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is not None and doc.connector != request.connector:
        log.warning("deprovision of another connector's transfer ignored", transfer=tp, by=request.connector)
        return
    # For a transfer we know nothing of (no provision request of its connector yet), nobody is called back: an
    # unknown transfer is no reason to send anything anywhere, least of all to an address the request named.
    # Its provision request, if it comes, is answered with the deprovisioning (handlers.provisioning.request).
    stored = target_from_store(doc.target) if doc is not None else None
    callback = _deprovision_target(request, stored) if stored is not None else None
    fields = {
        "deprovision_requested": True,
        "deprovision_reason": request.reason or "deprovision requested by the connector",
        "deprovision_callback": target_to_store(callback) if callback else None,
        "deprovision_request_id": event.id if callback else None,
    }
    if doc is None:
        # Before any provision request: recorded so that a late provision request finds it ended.
        await ctx.store.create(
            ProvisionDocument(id=tp, state=ProvisionState.REQUESTED, connector=request.connector, **fields),
            event_id=event.id,
        )
        await teardown_if_due(tp, ctx)
        return
    if doc.state != ProvisionState.DEPROVISIONED:
        await ctx.store.set_fields(ProvisionDocument, tp, fields)
        await teardown_if_due(tp, ctx)
    elif callback is not None and doc.deprovision_request_id != event.id:
        # A new request for a transfer torn down already: its answer goes where this one says.
        await ctx.store.set_fields(
            ProvisionDocument,
            tp,
            {"deprovision_callback": target_to_store(callback), "deprovision_request_id": event.id},
        )
    # Torn down already (the transfer's end came first), or its last step ran before this request was recorded:
    # the connector still waits for this answer.
    await answer_if_waiting(tp, ctx)


@on(EdcTransferCompleted, durable="provisioning-transfer-completed")
async def on_transfer_completed(event: Envelope[EdcTransferCompleted], ctx: HandlerContext) -> None:
    await transfer_ended(event, ctx)


@on(EdcTransferTerminated, durable="provisioning-transfer-terminated")
async def on_transfer_terminated(event: Envelope[EdcTransferTerminated], ctx: HandlerContext) -> None:
    await transfer_ended(event, ctx)


async def transfer_ended(event: Envelope[EdcTransferEvent], ctx: HandlerContext) -> None:
    ended = event.data
    tp = ended.transfer_process_id
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None or doc.state in _GONE:
        return
    if doc.connector != ended.connector:
        log.warning("end of another connector's transfer ignored", transfer=tp, by=ended.connector)
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
    # Nothing is being built for it: not yet (requested), or no more (settled). A teardown of a provision in the
    # middle of deploying or granting waits for it to settle, which calls this again.
    if doc.state == ProvisionState.REQUESTED or doc.state in SETTLED:
        await teardown(doc, ctx)


async def teardown(doc: ProvisionDocument, ctx: HandlerContext) -> None:
    tp = doc.id
    # One id for every trigger: a second trigger, or a redelivery, repeats the same steps as no-ops.
    key = teardown_key(tp)
    reason = doc.deprovision_reason or "deprovisioned"
    started = await ctx.store.transition(
        ProvisionDocument, tp, ProvisionState.DEPROVISIONING, event_id=key, reason=reason
    )
    if not started.settled and started.state != ProvisionState.DEPROVISIONING:
        return
    if await release(doc, ctx, key, reason):
        await finish_teardown(tp, ctx)
    # Otherwise the deployment handler is removing the WorkflowApi: wf.deployment.deleted finishes it.


def teardown_key(tp: str) -> str:
    return derived_id(tp, "teardown")


def finish_lease(tp: str) -> str:
    return f"deprovision-finish:{tp}"


@contextlib.asynccontextmanager
async def _answering(tp: str, ctx: HandlerContext) -> AsyncIterator[Callable[[], None]]:
    async with answering(ctx, finish_lease(tp), f"transfer {tp}") as still_ours:
        yield still_ours


async def answer_if_waiting(tp: str, ctx: HandlerContext) -> None:
    """Answer the recorded deprovision request of a transfer already deprovisioned, unless it was answered."""
    doc = await ctx.store.get(ProvisionDocument, tp)
    if not _waiting(doc):
        return
    async with _answering(tp, ctx) as still_ours:
        await _answer_late(tp, ctx, still_ours)


async def _answer_late(tp: str, ctx: HandlerContext, still_ours: Callable[[], None]) -> None:
    fresh = await ctx.store.get(ProvisionDocument, tp)
    if fresh is None or not _waiting(fresh):
        return
    callback = target_from_store(fresh.deprovision_callback)
    if callback is not None:
        await _answer(ctx, fresh, callback, still_ours)
    await ctx.store.set_fields(ProvisionDocument, tp, {"deprovision_answered": fresh.deprovision_request_id})


async def _answer(
    ctx: HandlerContext, doc: ProvisionDocument, callback: ProvisionTarget, still_ours: Callable[[], None]
) -> None:
    """Tell the connector, unless a handler before this one did and died (or stalled past its turn) before it could
    record so: its intent is recorded first, and the connector, asked, says whether the answer arrived."""
    taken_over = doc.deprovision_answering is not None and doc.deprovision_answering == doc.deprovision_request_id
    if taken_over and await connector_is_past(ctx, doc, {"DEPROVISIONED"}):
        log.info("deprovisioning already answered before a takeover", transfer=doc.id)
        return
    still_ours()
    await ctx.store.set_fields(ProvisionDocument, doc.id, {"deprovision_answering": doc.deprovision_request_id})
    still_ours()
    await tell_deprovisioned(ctx, callback)


def _waiting(doc: ProvisionDocument | None) -> bool:
    return (
        doc is not None
        and doc.state == ProvisionState.DEPROVISIONED
        and doc.deprovision_request_id is not None
        and doc.deprovision_answered != doc.deprovision_request_id
    )


@on(DeploymentDeleted, durable="provisioning-deployment-deleted")
async def on_deployment_deleted(event: Envelope[DeploymentDeleted], ctx: HandlerContext) -> None:
    deleted = event.data
    doc = await ctx.store.get(ProvisionDocument, deleted.transfer_process_id)
    if doc is not None and doc.state == ProvisionState.DEPROVISIONING:
        await finish_teardown(doc.id, ctx)


async def finish_teardown(tp: str, ctx: HandlerContext) -> None:
    """The WorkflowApi is gone: answer the connector if it asked, and record the transfer deprovisioned."""
    key = teardown_key(tp)
    fresh = await ctx.store.get(ProvisionDocument, tp)
    if fresh is None or fresh.state != ProvisionState.DEPROVISIONING:
        return
    async with _answering(tp, ctx) as still_ours:
        fresh = await ctx.store.get(ProvisionDocument, tp)
        if fresh is None or fresh.state != ProvisionState.DEPROVISIONING:
            return
        reason = fresh.deprovision_reason or "deprovisioned"
        callback = target_from_store(fresh.deprovision_callback)
        if callback is not None:
            await _answer(ctx, fresh, callback, still_ours)
            await ctx.store.set_fields(ProvisionDocument, tp, {"deprovision_answered": fresh.deprovision_request_id})
        done = await ctx.store.transition(
            ProvisionDocument, tp, ProvisionState.DEPROVISIONED, event_id=key, reason=reason
        )
        # A request recorded after this teardown read the document: answered here, or by its own handler once it
        # sees the transfer deprovisioned.
        await _answer_late(tp, ctx, still_ours)
    if done.settled:
        await ctx.emit(
            ConsumerDeprovisioned(transfer_process_id=tp, consumer_id=fresh.consumer_id, reason=reason),
            about=tp,
            cause=key,
        )
        log.info("consumer deprovisioned", transfer=tp, reason=reason)


async def release(doc: ProvisionDocument, ctx: HandlerContext, key: str, reason: str) -> bool:
    """Revoke the token, stop the consumer's runs, have the deployment removed: also after a failed
    provisioning. True when no deployment is left to wait for."""
    tp = doc.id
    revoked = await ctx.store.transition(AccessGrantDocument, tp, AccessState.REVOKED, event_id=key, reason=reason)
    if revoked.settled and doc.consumer_id:
        await ctx.emit(
            AccessRevoked(transfer_process_id=tp, consumer_id=doc.consumer_id, reason=reason), about=tp, cause=key
        )
    if doc.consumer_id:
        await _stop_runs(doc, ctx, key, reason)
    return await _deployment_gone(doc, ctx, key, reason)


async def _stop_runs(doc: ProvisionDocument, ctx: HandlerContext, key: str, reason: str) -> None:
    consumer = doc.consumer_id
    others = await ctx.store.find(
        ProvisionDocument,
        states=sorted(LIVE),
        consumer_id=consumer,
    )
    if any(other.id != doc.id for other in others):
        # Runs belong to the consumer, not to one transfer: another live transfer keeps them going.
        return
    live = [st for st in RunDocument.machine.transitions if st not in RunDocument.machine.terminal]
    for run in await ctx.store.find(RunDocument, states=live, consumer_id=consumer):
        await ctx.emit(
            RunStopRequested(run_id=run.id, consumer_id=run.consumer_id, reason=f"deprovisioned: {reason}"),
            about=run.id,
            cause=key,
            key=(doc.id, run.id),
        )


async def _deployment_gone(doc: ProvisionDocument, ctx: HandlerContext, key: str, reason: str) -> bool:
    if not doc.deployment_id:
        return True
    dep = await ctx.store.get(DeploymentDocument, doc.deployment_id)
    if dep is None or dep.state == DeploymentState.DELETED:
        return True
    # One command per deployment whichever path asks (failure, teardown, a redelivery): JetStream keeps one.
    await ctx.emit(
        DeploymentDeleteRequested(
            deployment_id=dep.id, transfer_process_id=doc.id, consumer_id=dep.consumer_id, reason=reason
        ),
        about=doc.id,
        cause=key,
        key=(dep.id,),
    )
    return False


async def tell_deprovisioned(ctx: HandlerContext, target: ProvisionTarget, error: str | None = None) -> None:
    if ctx.edc is None:
        log.warning("no EDC connector configured: the connector is not told", transfer=target.transfer_process_id)
        return
    try:
        await ctx.edc.deprovisioned(target, error=error)
    except EdcError as failure:
        # Recorded in the EDC call log; what we removed stays removed whatever the connector answered.
        log.warning("connector not told of the deprovisioning", transfer=target.transfer_process_id, error=str(failure))


def _deprovision_target(request: EdcDeprovisionRequested, stored: ProvisionTarget | None) -> ProvisionTarget | None:
    """The request's own address, else the provision request's; the EDC client calls either only when it lies
    under the connector's callback bases."""
    if request.callback_address is not None:
        return ProvisionTarget.of(request)
    return stored
