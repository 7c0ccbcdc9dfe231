"""Results retention: a run's results are kept for GXWF_RESULT_RETENTION_DAYS after the run ended (also after
its consumer was deprovisioned), then their objects are deleted and the result marked expired.

A periodic pass, one replica at a time (a lease). A result being downloaded (the WorkflowApi holds the lease
`result-download:<run id>` while it streams, and for a presigned URL's validity) is left for a later pass, but
for at most HELD_AT_MOST_SECONDS past its retention: downloads started one after another (each renewing the lease)
cannot keep results for ever."""

from __future__ import annotations

from datetime import timedelta

import structlog

from events.envelope import derived_id, utcnow
from events.payloads.result import ResultExpired
from handlers.context import HandlerContext
from handlers.declare import every
from schemas.names import RESULTS_RETENTION_LEASE, result_download_lease, result_prefix
from schemas.provisioning import ResultDocument, ResultState

log = structlog.get_logger("gxwf.results")
LEASE_SECONDS = 60.0
BATCH = 500
HELD_AT_MOST_SECONDS = 86_400.0


@every(interval="retention_interval_seconds", name="results-retention")
async def retention_pass(ctx: HandlerContext) -> int:
    return await expire_once(ctx, ctx.result_retention_days)


async def expire_once(
    ctx: HandlerContext, retention_days: float, *, held_at_most_seconds: float = HELD_AT_MOST_SECONDS
) -> int:
    """Delete what is past retention now; the number of results expired."""
    if retention_days <= 0:
        return 0  # kept forever
    leases = ctx.leases
    if leases is not None and not await leases.hold(RESULTS_RETENTION_LEASE, ctx.holder, LEASE_SECONDS):
        return 0
    objects = ctx.require_objects()
    cutoff = utcnow() - timedelta(days=retention_days)
    held_cutoff = cutoff - timedelta(seconds=held_at_most_seconds)
    expired = 0
    # Oldest first: the pass stops at the first result still within its retention.
    for result in await ctx.store.find(
        ResultDocument, states=[ResultState.PUBLISHED, ResultState.FAILED], limit=BATCH, oldest_first=True
    ):
        if result.created_at > cutoff:
            break
        if (
            leases is not None
            and result.created_at > held_cutoff
            and await leases.held(result_download_lease(result.id))
        ):
            log.info("result past retention kept while it is downloaded", run_id=result.id)
            continue
        keys = [stored.key for stored in await objects.list(result_prefix(result.consumer_id, result.id))]
        if keys:
            await objects.delete(keys)
        event_id = derived_id(result.id, ResultExpired.subject)
        moved = await ctx.store.transition(
            ResultDocument,
            result.id,
            ResultState.EXPIRED,
            event_id=event_id,
            reason=f"older than the retention of {retention_days:g} days",
        )
        if not moved.settled:
            continue
        await ctx.emit(
            ResultExpired(
                run_id=result.id, consumer_id=result.consumer_id, objects=len(keys), retention_days=retention_days
            ),
            about=result.id,
            cause=None,
            event_id=event_id,
        )
        expired += 1
    return expired
