"""The dispatcher: admit queued runs to their site while slots are free, fairly across consumers.

One replica dispatches a site at a time (a lease), so the limits hold however many replicas run. Each
admission is a compare-and-set queued -> pending with an id derived from the run, so a dispatcher that dies
half-way and its successor never admit a run twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque

import structlog

from events import subjects as s
from events.envelope import new_event, utcnow
from events.payloads.run import RunPending
from handlers.context import HandlerContext, RunLimits
from handlers.jobs.ids import attempt_fact_id
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs.dispatch")
SOURCE = "urn:gaiax-workflows:jobs-dispatcher"
LEASE_SECONDS = 10.0


def pick_fair(queued: list[RunDocument], active: Counter[str], limits: RunLimits) -> list[RunDocument]:
    """Runs to admit now: round-robin over consumers, the least busy consumer first, oldest run first."""
    free = limits.per_site - sum(active.values())
    by_consumer: dict[str, deque[RunDocument]] = defaultdict(deque)
    for run in queued:  # oldest first
        by_consumer[run.consumer_id].append(run)
    busy = Counter(active)
    admitted: list[RunDocument] = []
    while free > 0:
        eligible = [c for c, runs in by_consumer.items() if runs and busy[c] < limits.per_consumer]
        if not eligible:
            break
        # Fewest active first; ties go to whoever has waited longest.
        consumer = min(eligible, key=lambda c: (busy[c], by_consumer[c][0].created_at))
        admitted.append(by_consumer[consumer].popleft())
        busy[consumer] += 1
        free -= 1
    return admitted


async def dispatch_once(ctx: HandlerContext) -> int:
    compute = ctx.require_compute()
    if ctx.leases is not None and not await ctx.leases.hold(
        f"jobs-dispatcher:{compute.site}", ctx.holder, LEASE_SECONDS
    ):
        return 0
    active_runs = await ctx.store.find(
        RunDocument, states=[RunState.PENDING, RunState.RUNNING], limit=100_000, site=compute.site
    )
    active = Counter(run.consumer_id for run in active_runs)
    if sum(active.values()) >= ctx.limits.per_site:
        return 0
    now = utcnow()
    queued = [
        run
        for run in await ctx.store.find(
            RunDocument, states=[RunState.QUEUED], limit=10_000, oldest_first=True, site=compute.site
        )
        if run.not_before is None or run.not_before <= now  # a retry waits out its backoff
    ]
    admitted = 0
    for run in pick_fair(queued, active, ctx.limits):
        pending_id = attempt_fact_id(run.id, s.RUN_PENDING, run.attempt)
        result = await ctx.store.transition(RunDocument, run.id, RunState.PENDING, event_id=pending_id)
        if not result.settled:
            continue  # stopped while queued
        await ctx.events.publish(
            new_event(
                s.RUN_PENDING,
                RunPending(
                    run_id=run.id,
                    consumer_id=run.consumer_id,
                    backend=compute.name,
                    site=compute.site,
                    attempt=run.attempt,
                ),
                id_=pending_id,
                subject=run.id,
                correlationid=run.id,
                causationid=run.history[-1].event_id if run.history else None,
                source=SOURCE,
            )
        )
        admitted += 1
    return admitted
