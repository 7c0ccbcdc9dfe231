"""A provisioning that cannot succeed ends failed, with its reason, an event, and the connector told."""

from __future__ import annotations

import structlog

from events.envelope import derived_id
from events.payloads.consumer import ConsumerProvisioningFailed
from handlers.context import HandlerContext
from handlers.provisioning.common import target_from_store
from handlers.provisioning.teardown import release, teardown_if_due, tell_deprovisioned
from schemas.dataflows import DataFlowDocument, DataFlowState
from schemas.provisioning import ProvisionDocument, ProvisionState

log = structlog.get_logger("gxwf.provisioning")


async def fail_provision(
    tp: str, ctx: HandlerContext, *, step: str, reason: str, cause: str, tell: bool = True
) -> None:
    """`step`: negotiation, asset, deployment or callback. `tell`: False when the connector's callback address
    was refused, so no answer is attempted."""
    failed = await ctx.store.transition(
        ProvisionDocument,
        tp,
        ProvisionState.FAILED,
        event_id=cause,
        reason=reason,
        fields={"failed_step": step, "reason": reason},
    )
    if not failed.settled:
        return
    doc = await ctx.store.get(ProvisionDocument, tp)
    if doc is None:
        return
    log.warning("provisioning failed", transfer=tp, step=step, reason=reason)
    await release(doc, ctx, derived_id(tp, "failed"), reason)
    await ctx.emit(
        ConsumerProvisioningFailed(transfer_process_id=tp, consumer_id=doc.consumer_id, step=step, reason=reason),
        about=tp,
        cause=cause,
    )
    if await ctx.store.get(DataFlowDocument, tp) is not None:
        # The control plane hears of it through the `errored` callback (below) and reads it as TERMINATED.
        await ctx.store.transition(
            DataFlowDocument,
            tp,
            DataFlowState.TERMINATED,
            event_id=cause,
            reason=reason,
            fields={"reason": f"{step}: {reason}"},
        )
    target = target_from_store(doc.target) if tell else None
    if target is not None:
        # Neither provisioner generation has a failure answer to a provision request; the deprovision
        # answer with its error set is the one that ends the connector's wait with our reason.
        await tell_deprovisioned(ctx, target, error=f"{step}: {reason}")
    await teardown_if_due(tp, ctx)
