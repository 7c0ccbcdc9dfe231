"""The watcher: compare admitted runs with their workloads and report what the backend knows.

One replica watches a site at a time (a lease), so N replicas do not ask the backend N times about every run.
It publishes facts with ids derived from the run, so two watchers during a handover report a fact once:
JetStream drops the duplicates and the tracker applies each fact once. A run is never left pending or running
after its workload is gone, and neither phase lasts longer than its time limit.

A run pending for long without a start is announced again (the same derived id): a dispatcher that recorded the
admission and then died or lost its lease (fencing refuses its publish) before announcing it would otherwise
leave it pending for ever.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from events.envelope import utcnow
from events.payloads.common import Payload
from events.payloads.run import (
    RetryPolicy,
    RunFailed,
    RunPending,
    RunRetrying,
    RunStopped,
    RunSucceeded,
    RunTimedOut,
)
from handlers.context import HandlerContext
from handlers.declare import every
from handlers.jobs.ids import attempt_fact_id
from ports.compute import WorkloadPhase, WorkloadStatus
from schemas.names import watcher_lease
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs.watch")
LEASE_SECONDS = 10.0
# A run pending this long has its admission announced again, in the first second of every such period (the
# start handler normally takes it within milliseconds; its event in a dead replica's hands comes back after the
# ack wait anyway).
REANNOUNCE_SECONDS = 15.0


def _entered(run: RunDocument, state: str, default: float) -> float:
    for entry in reversed(run.history):
        if entry.to == state:
            return entry.at.timestamp()
    return default


def _judge_running(run: RunDocument, status: WorkloadStatus, elapsed: float) -> Payload | None:
    ids = {"run_id": run.id, "consumer_id": run.consumer_id}
    if run.stop_requested and status.phase is not WorkloadPhase.RUNNING:
        # The stop handler killed it (or is doing so): the end is a stop, whatever the exit status says.
        return RunStopped(**ids, reason=run.stop_requested)
    if status.phase is WorkloadPhase.EXITED and status.timed_out:
        # The backend's scheduler ended it at its time limit before this watcher did.
        limit = float(run.spec.get("timeout_seconds") or 0) or elapsed or 1.0
        return RunTimedOut(**ids, phase="running", limit_seconds=limit, detail=status.detail)
    if status.phase is WorkloadPhase.EXITED and status.exit_code == 0:
        return RunSucceeded(**ids, duration_seconds=elapsed)
    if status.phase in (WorkloadPhase.EXITED, WorkloadPhase.MISSING):
        if status.phase is WorkloadPhase.EXITED:
            reason = status.detail or f"exit status {status.exit_code}"
        else:
            reason = status.detail or "workload vanished without an exit status"
        retry = _retry(run, status, reason)
        if retry is not None:
            return retry
        return RunFailed(
            **ids, exit_code=status.exit_code, failure=status.failure, reason=reason, duration_seconds=elapsed
        )
    if status.waiting:
        # Admitted by the backend but not started (an image that never pulls, nothing schedules it).
        pending_limit = float(run.spec.get("pending_timeout_seconds") or 0)
        if pending_limit and elapsed > pending_limit:
            return RunTimedOut(**ids, phase="pending", limit_seconds=pending_limit, detail=status.detail)
    limit = float(run.spec.get("timeout_seconds") or 0)
    if limit and elapsed > limit:
        return RunTimedOut(**ids, phase="running", limit_seconds=limit)
    return None


def _retry(run: RunDocument, status: WorkloadStatus, reason: str) -> RunRetrying | None:
    """The next attempt, when the run's retry policy covers this failure and attempts are left."""
    policy = RetryPolicy.model_validate(run.spec.get("retry") or {})
    if run.attempt > policy.limit:
        return None
    covered = status.failure in policy.on or (
        status.failure == "exit_code" and status.exit_code is not None and status.exit_code in policy.exit_codes
    )
    if not covered:
        return None
    delay = policy.backoff_seconds * 2 ** (run.attempt - 1)
    return RunRetrying(
        run_id=run.id,
        consumer_id=run.consumer_id,
        attempt=run.attempt + 1,
        reason=reason,
        retry_at=utcnow() + timedelta(seconds=delay),
    )


@every(interval="watch_interval_seconds", name="jobs-watcher")
async def reconcile_once(ctx: HandlerContext, *, limit: int = 500) -> int:
    """One pass over this backend's pending and running runs; returns how many facts it reported."""
    compute = ctx.require_compute()
    if ctx.leases is not None and not await ctx.leases.hold(watcher_lease(compute.site), ctx.holder, LEASE_SECONDS):
        return 0
    reported = 0
    runs = await ctx.store.find(
        RunDocument,
        states=[RunState.PENDING, RunState.RUNNING],
        limit=limit,
        backend=compute.name,
        site=compute.site,
    )
    now = utcnow().timestamp()
    for run in runs:
        verdict: Payload | None = None
        if run.state == RunState.RUNNING:
            elapsed = max(now - _entered(run, RunState.RUNNING, now), 0.0)
            status = await compute.status(run.id, attempt=run.attempt)
            if status.phase is not WorkloadPhase.RUNNING and not run.stop_requested:
                # The list was read before the workload was seen gone: a stop may have been recorded meanwhile
                # (the stop handler records it before it kills), and a killed workload must end as stopped,
                # not failed. Reading the run again after the status closes that window.
                fresh = await ctx.store.get(RunDocument, run.id)
                if fresh is None or fresh.state != run.state or fresh.attempt != run.attempt:
                    continue
                run = fresh
            verdict = _judge_running(run, status, elapsed)
        else:
            # Pending: the start handler is on it. Only a start that never happens in time is ours to end
            # (its event dead-lettered, the backend refusing it, an image that never pulls).
            waited = max(now - _entered(run, RunState.PENDING, now), 0.0)
            pending_limit = float(run.spec.get("pending_timeout_seconds") or 0)
            if pending_limit and waited > pending_limit:
                verdict = RunTimedOut(
                    run_id=run.id, consumer_id=run.consumer_id, phase="pending", limit_seconds=pending_limit
                )
            elif waited >= REANNOUNCE_SECONDS and waited % REANNOUNCE_SECONDS < 1.0:
                await _announce_again(ctx, run)
        if verdict is None:
            continue
        if isinstance(verdict, RunTimedOut):
            await compute.stop(run.id)
        await ctx.emit(
            verdict,
            about=run.id,
            cause=run.history[-1].event_id if run.history else None,
            event_id=attempt_fact_id(run.id, type(verdict), run.attempt),
        )
        reported += 1
    return reported


async def _announce_again(ctx: HandlerContext, run: RunDocument) -> None:
    """The run's wf.run.pending once more, with the id its dispatcher gave it: dropped by JetStream when it is
    there already."""
    compute = ctx.require_compute()
    pending_id = attempt_fact_id(run.id, RunPending, run.attempt)
    # Caused by what the dispatcher named: the transition before the admission.
    admitted = max((i for i, h in enumerate(run.history) if h.to == RunState.PENDING), default=0)
    await ctx.emit(
        RunPending(
            run_id=run.id, consumer_id=run.consumer_id, backend=compute.name, site=compute.site, attempt=run.attempt
        ),
        about=run.id,
        cause=run.history[admitted - 1].event_id if admitted > 0 else None,
        event_id=pending_id,
    )
