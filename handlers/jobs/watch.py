"""The watcher: compare running runs with their workloads and report what the backend knows.

It publishes facts with ids derived from the run, so every replica may watch: JetStream drops the
duplicates and the tracker applies each fact once.
"""

from __future__ import annotations

import structlog

from events import subjects as s
from events.envelope import derived_id, new_event, utcnow
from events.payloads.common import Payload
from events.payloads.run import RunFailed, RunStopped, RunSucceeded, RunTimedOut
from handlers.context import HandlerContext
from ports.compute import WorkloadPhase
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs.watch")
SOURCE = "urn:gaiax-workflows:jobs-watcher"


def _running_since(run: RunDocument) -> float | None:
    for entry in reversed(run.history):
        if entry.to == RunState.RUNNING:
            return entry.at.timestamp()
    return None


async def reconcile_once(ctx: HandlerContext, *, limit: int = 500) -> int:
    """One pass over this backend's running runs; returns how many facts it reported."""
    compute = ctx.require_compute()
    reported = 0
    runs = await ctx.store.find(
        RunDocument, states=[RunState.RUNNING], limit=limit, backend=compute.name, site=compute.site
    )
    now = utcnow().timestamp()
    for run in runs:
        since = _running_since(run) or now
        elapsed = max(now - since, 0.0)
        status = await compute.status(run.id)
        subject: str
        fact: Payload
        if run.stop_requested and status.phase is not WorkloadPhase.RUNNING:
            # The stop handler killed it (or is doing so): the end is a stop, whatever the exit status says.
            subject, fact = (
                s.RUN_STOPPED,
                RunStopped(run_id=run.id, consumer_id=run.consumer_id, reason=run.stop_requested),
            )
        elif status.phase is WorkloadPhase.EXITED and status.exit_code == 0:
            subject, fact = (
                s.RUN_SUCCEEDED,
                RunSucceeded(run_id=run.id, consumer_id=run.consumer_id, duration_seconds=elapsed),
            )
        elif status.phase is WorkloadPhase.EXITED:
            subject, fact = (
                s.RUN_FAILED,
                RunFailed(
                    run_id=run.id,
                    consumer_id=run.consumer_id,
                    exit_code=status.exit_code,
                    reason=status.detail or f"exit status {status.exit_code}",
                    duration_seconds=elapsed,
                ),
            )
        elif status.phase is WorkloadPhase.MISSING:
            subject, fact = (
                s.RUN_FAILED,
                RunFailed(
                    run_id=run.id,
                    consumer_id=run.consumer_id,
                    reason=status.detail or "workload vanished without an exit status",
                    duration_seconds=elapsed,
                ),
            )
        else:
            limit_seconds = float(run.spec.get("timeout_seconds", 0) or 0)
            if not limit_seconds or elapsed <= limit_seconds:
                continue
            await compute.stop(run.id)
            subject, fact = (
                s.RUN_TIMED_OUT,
                RunTimedOut(run_id=run.id, consumer_id=run.consumer_id, phase="running", limit_seconds=limit_seconds),
            )
        await ctx.events.publish(
            new_event(
                subject,
                fact,
                id_=derived_id(run.id, subject),
                subject=run.id,
                correlationid=run.id,
                causationid=run.history[-1].event_id if run.history else None,
                source=SOURCE,
            )
        )
        reported += 1
    return reported
