"""wf.run.<fact>: apply what a backend reported to the run document, in order and once."""

from __future__ import annotations

from typing import Any

import structlog

from events.envelope import Envelope
from events.payloads.run import RunFact, RunFailed, RunRetrying, RunRunning, RunStopped, RunSucceeded, RunTimedOut
from handlers.context import HandlerContext
from handlers.declare import on
from ports.store import Outcome, StateStore, TransitionResult
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")


@on(RunRunning, durable="jobs-track-running")
async def on_run_running(event: Envelope[RunRunning], ctx: HandlerContext) -> None:
    await _record(event, ctx)


@on(RunSucceeded, durable="jobs-track-succeeded")
async def on_run_succeeded(event: Envelope[RunSucceeded], ctx: HandlerContext) -> None:
    await _record(event, ctx)


@on(RunRetrying, durable="jobs-track-retrying")
async def on_run_retrying(event: Envelope[RunRetrying], ctx: HandlerContext) -> None:
    await _record(event, ctx)


@on(RunFailed, durable="jobs-track-failed")
async def on_run_failed(event: Envelope[RunFailed], ctx: HandlerContext) -> None:
    await _record(event, ctx)


@on(RunStopped, durable="jobs-track-stopped")
async def on_run_stopped(event: Envelope[RunStopped], ctx: HandlerContext) -> None:
    await _record(event, ctx)


@on(RunTimedOut, durable="jobs-track-timed-out")
async def on_run_timed_out(event: Envelope[RunTimedOut], ctx: HandlerContext) -> None:
    await _record(event, ctx)


def change_of(fact: RunFact) -> tuple[RunState, str | None, dict[str, Any]] | None:
    """The transition a reported fact makes of its run (target, reason, fields), or None for a fact that makes
    none here. The tracker applies it; `gxwf store rebuild` applies the same from the stream."""
    match fact:
        case RunRunning():
            return RunState.RUNNING, None, {"handle": fact.handle}
        case RunSucceeded():
            return RunState.SUCCEEDED, None, {"exit_code": 0}
        case RunRetrying():
            reason = f"attempt {fact.attempt - 1} failed ({fact.reason}); attempt {fact.attempt} queued"
            return RunState.QUEUED, reason, {"attempt": fact.attempt, "not_before": fact.retry_at}
        case RunFailed():
            return RunState.FAILED, fact.reason, {"exit_code": fact.exit_code}
        case RunStopped():
            return RunState.STOPPED, fact.reason, {}
        case RunTimedOut():
            reason = f"{fact.phase} longer than {fact.limit_seconds:g}s"
            if fact.detail:
                reason = f"{reason}: {fact.detail}"
            return RunState.TIMED_OUT, reason, {}
    return None


async def apply_fact(store: StateStore, fact: RunFact, event_id: str) -> TransitionResult | None:
    """Make the fact's transition of its run, once per event (the store's conditional transition)."""
    change = change_of(fact)
    if change is None:
        return None
    target, reason, fields = change
    if reason is not None:
        fields["reason"] = reason
    return await store.transition(RunDocument, fact.run_id, target, event_id=event_id, reason=reason, fields=fields)


async def _record(event: Envelope[RunFact], ctx: HandlerContext) -> None:
    fact = event.data
    result = await apply_fact(ctx.store, fact, event.id)
    if result is None:
        return
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
