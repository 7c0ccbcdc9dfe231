"""wf.run.<fact>: apply what a backend reported to the run document, in order and once."""

from __future__ import annotations

from typing import Any

import structlog

from events.envelope import Envelope
from events.payloads.run import RunFact, RunFailed, RunRetrying, RunRunning, RunStopped, RunSucceeded, RunTimedOut
from handlers.context import HandlerContext
from handlers.declare import on
from ports.store import Outcome
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


@on(RunRunning, durable="jobs-track-running")
async def on_run_running(event: Envelope[RunRunning], ctx: HandlerContext) -> None:
    await _record(event, ctx, RunState.RUNNING, None, {"handle": event.data.handle})


@on(RunSucceeded, durable="jobs-track-succeeded")
async def on_run_succeeded(event: Envelope[RunSucceeded], ctx: HandlerContext) -> None:
    await _record(event, ctx, RunState.SUCCEEDED, None, {"exit_code": 0})


@on(RunRetrying, durable="jobs-track-retrying")
async def on_run_retrying(event: Envelope[RunRetrying], ctx: HandlerContext) -> None:
    fact = event.data
    reason = f"attempt {fact.attempt - 1} failed ({fact.reason}); attempt {fact.attempt} queued"
    await _record(event, ctx, RunState.QUEUED, reason, {"attempt": fact.attempt, "not_before": fact.retry_at})


@on(RunFailed, durable="jobs-track-failed")
async def on_run_failed(event: Envelope[RunFailed], ctx: HandlerContext) -> None:
    await _record(event, ctx, RunState.FAILED, event.data.reason, {"exit_code": event.data.exit_code})


@on(RunStopped, durable="jobs-track-stopped")
async def on_run_stopped(event: Envelope[RunStopped], ctx: HandlerContext) -> None:
    await _record(event, ctx, RunState.STOPPED, event.data.reason, {})


@on(RunTimedOut, durable="jobs-track-timed-out")
async def on_run_timed_out(event: Envelope[RunTimedOut], ctx: HandlerContext) -> None:
    fact = event.data
    reason = f"{fact.phase} longer than {fact.limit_seconds:g}s"
    if fact.detail:
        reason = f"{reason}: {fact.detail}"
    await _record(event, ctx, RunState.TIMED_OUT, reason, {})


async def _record(
    event: Envelope[RunFact], ctx: HandlerContext, target: RunState, reason: str | None, fields: dict[str, Any]
) -> None:
    fact = event.data
    if reason is not None:
        fields["reason"] = reason
    result = await ctx.store.transition(
        RunDocument, fact.run_id, target, event_id=event.id, reason=reason, fields=fields
    )
    if result.outcome is Outcome.REJECTED:
        # Out of order or stale: the document keeps its state; acking is right, a retry would not help.
        log.warning(
            "run fact rejected by the state machine",
            run_id=fact.run_id,
            state=result.state,
            fact=event.type,
            event_id=event.id,
        )
    elif result.outcome is Outcome.MISSING:
        log.warning("run fact for an unknown run", run_id=fact.run_id, fact=event.type, event_id=event.id)
