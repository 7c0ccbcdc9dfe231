"""The dispatcher: admit queued runs to their site while slots are free, fairly across consumers.

One replica dispatches a site at a time (a lease), so the limits hold however many replicas run. Each
admission is a compare-and-set queued -> pending with an id derived from the run, so a dispatcher that dies
half-way and its successor never admit a run twice.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from dataclasses import dataclass

import structlog

from events.envelope import utcnow
from events.payloads.run import RunFailed, RunPending
from handlers.context import HandlerContext, RunLimits
from handlers.declare import every
from handlers.jobs.ids import attempt_fact_id
from schemas.names import dispatcher_lease
from schemas.run import RunDocument, RunState
from schemas.sites import ConsumerQuota

log = structlog.get_logger("gxwf.jobs.dispatch")
LEASE_SECONDS = 10.0


@dataclass(frozen=True)
class Needs:
    """What a run holds while pending or running, counted against its consumer's quota."""

    cpu: float = 0.0
    memory: int = 0
    gpu: int = 0

    @classmethod
    def of(cls, run: RunDocument) -> Needs:
        # A run that asks for no cpu or memory (an operator's shell command) counts as none of it.
        spec = run.spec
        memory_mb = spec.get("memory_mb") or 0
        return cls(
            cpu=float(spec.get("cpu") or 0.0), memory=int(memory_mb) * 2**20, gpu=int(spec.get("gpu_count") or 0)
        )

    def __add__(self, other: Needs) -> Needs:
        return Needs(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    def within(self, quota: ConsumerQuota) -> bool:
        return not quota.shortfalls(self.cpu, self.memory, self.gpu)


def pick_fair(
    queued: list[RunDocument],
    active: Counter[str],
    limits: RunLimits,
    held: dict[str, Needs] | None = None,
) -> list[RunDocument]:
    """Runs to admit now: round-robin over consumers, the least busy consumer first, oldest run first.

    A consumer's oldest run waits while it would take the consumer over its quota (`held`: what its active
    runs hold); its younger runs wait behind it, so a consumer's runs start in the order it asked for them."""
    free = limits.per_site - sum(active.values())
    by_consumer: dict[str, deque[RunDocument]] = defaultdict(deque)
    for run in queued:  # oldest first
        by_consumer[run.consumer_id].append(run)
    busy = Counter(active)
    holding: dict[str, Needs] = defaultdict(Needs, held or {})
    per_consumer = limits.runs_per_consumer

    def fits(consumer: str) -> bool:
        return (holding[consumer] + Needs.of(by_consumer[consumer][0])).within(limits.quota)

    admitted: list[RunDocument] = []
    while free > 0:
        eligible = [c for c, runs in by_consumer.items() if runs and busy[c] < per_consumer and fits(c)]
        if not eligible:
            break
        # Fewest active first; ties go to whoever has waited longest.
        consumer = min(eligible, key=lambda c: (busy[c], by_consumer[c][0].created_at))
        run = by_consumer[consumer].popleft()
        admitted.append(run)
        busy[consumer] += 1
        holding[consumer] = holding[consumer] + Needs.of(run)
        free -= 1
    return admitted


def never_fits(run: RunDocument, quota: ConsumerQuota) -> list[str]:
    """Why the run alone exceeds its consumer's quota: waiting would never admit it."""
    needs = Needs.of(run)
    return quota.shortfalls(needs.cpu, needs.memory, needs.gpu)


@every(interval="dispatch_interval_seconds", name="jobs-dispatcher")
async def dispatch_once(ctx: HandlerContext) -> int:
    compute = ctx.require_compute()
    if ctx.leases is not None and not await ctx.leases.hold(dispatcher_lease(compute.site), ctx.holder, LEASE_SECONDS):
        return 0
    active_runs = await ctx.store.find(
        RunDocument, states=[RunState.PENDING, RunState.RUNNING], limit=100_000, site=compute.site
    )
    active = Counter(run.consumer_id for run in active_runs)
    held: dict[str, Needs] = defaultdict(Needs)
    for run in active_runs:
        held[run.consumer_id] = held[run.consumer_id] + Needs.of(run)
    if sum(active.values()) >= ctx.limits.per_site:
        # Full: nothing to admit, so the queue is not even read (a pass every fraction of a second).
        return 0
    now = utcnow()
    queued: list[RunDocument] = []
    for run in await ctx.store.find(
        RunDocument, states=[RunState.QUEUED], limit=10_000, oldest_first=True, site=compute.site
    ):
        if not run.announced:
            continue  # its wf.run.queued is not out yet
        if missing := never_fits(run, ctx.limits.quota):
            await _refuse(ctx, run, compute.site, missing)
        elif run.not_before is None or run.not_before <= now:  # a retry waits out its backoff
            queued.append(run)
    admitted = 0
    for run in pick_fair(queued, active, ctx.limits, held):
        # Where a rehearsal holds the dispatcher mid-pass, under its lease (the fencing tests pause it there).
        await ctx.faults.reach("jobs.before_admit")
        pending_id = attempt_fact_id(run.id, RunPending, run.attempt)
        result = await ctx.store.transition(RunDocument, run.id, RunState.PENDING, event_id=pending_id)
        if not result.settled:
            continue  # stopped while queued
        await ctx.emit(
            RunPending(
                run_id=run.id, consumer_id=run.consumer_id, backend=compute.name, site=compute.site, attempt=run.attempt
            ),
            about=run.id,
            # No event caused it: the run's last recorded transition (its queueing) did.
            cause=run.history[-1].event_id if run.history else None,
            event_id=pending_id,
        )
        admitted += 1
    return admitted


async def _refuse(ctx: HandlerContext, run: RunDocument, site: str, missing: list[str]) -> None:
    """A run bigger than its consumer's whole quota fails now, saying so, instead of queueing forever."""
    failed_id = attempt_fact_id(run.id, RunFailed, run.attempt)
    reason = f"exceeds the consumer quota on site {site}: {'; '.join(missing)}"
    result = await ctx.store.transition(
        RunDocument, run.id, RunState.FAILED, event_id=failed_id, reason=reason, fields={"reason": reason}
    )
    if not result.settled:
        return
    await ctx.emit(
        RunFailed(run_id=run.id, consumer_id=run.consumer_id, reason=reason),
        about=run.id,
        cause=run.history[-1].event_id if run.history else None,
        event_id=failed_id,
    )
    log.info("run refused by the consumer quota", run_id=run.id, reason=reason)
