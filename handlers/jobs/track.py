"""wf.run.<fact>: apply what a backend reported to the run document, in order and once."""

from __future__ import annotations

from typing import Any

import structlog

from events import subjects as s
from events.envelope import Envelope
from events.payloads.run import RunFailed, RunRetrying, RunRunning, RunStopped, RunTimedOut
from handlers.context import HandlerContext
from ports.store import Outcome
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.jobs")

_TARGET = {
    s.RUN_RUNNING: RunState.RUNNING,
    s.RUN_SUCCEEDED: RunState.SUCCEEDED,
    s.RUN_FAILED: RunState.FAILED,
    s.RUN_STOPPED: RunState.STOPPED,
    s.RUN_TIMED_OUT: RunState.TIMED_OUT,
    s.RUN_RETRYING: RunState.QUEUED,
}


async def on_run_fact(event: Envelope[Any], ctx: HandlerContext) -> None:
    fact = event.data
    target = _TARGET[event.type]
    fields: dict[str, Any] = {}
    reason: str | None = None
    match fact:
        case RunRunning():
            fields["handle"] = fact.handle
        case RunFailed():
            fields["exit_code"] = fact.exit_code
            reason = fact.reason
        case RunStopped():
            reason = fact.reason
        case RunRetrying():
            fields.update(attempt=fact.attempt, not_before=fact.retry_at)
            reason = f"attempt {fact.attempt - 1} failed ({fact.reason}); attempt {fact.attempt} queued"
        case RunTimedOut():
            reason = f"{fact.phase} longer than {fact.limit_seconds:g}s"
            if fact.detail:
                reason = f"{reason}: {fact.detail}"
    if target is RunState.SUCCEEDED:
        fields["exit_code"] = 0
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
