"""Redelivery and dead-lettering: a failing event is retried with backoff, then parked in `dlq.<subject>`.

FastStream's NATS default (REJECT_ON_ERROR) terminates a message on its first error. We run every
subscriber with NACK_ON_ERROR and this middleware inside it, which turns an error into a delayed NAK while
tries remain and into a dead letter (then an ACK) on the last try, so no event is dropped silently.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from faststream import BaseMiddleware
from faststream.exceptions import NackMessage
from faststream.message import StreamMessage
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from events.attempt import AheadOfState, Delivery, delivering
from events.envelope import utcnow
from events.payloads.dead_letter import DeadLetter, HandlerError
from events.subjects import dead_letter_subject

log = structlog.get_logger("gxwf.delivery")

EVENTS_HANDLED = Counter(
    "gxwf_events_handled_total",
    "Events a handler finished with, by outcome (ok, retry, dead_letter)",
    ["handler", "outcome"],
)
HANDLER_SECONDS = Histogram("gxwf_handler_seconds", "Time a handler spent on one event", ["handler"])


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard a subscriber tries before it gives an event up to the dead-letter subject."""

    max_attempts: int = 5
    backoff: Sequence[float] = (0.5, 2.0, 5.0, 15.0, 30.0)
    # Unacked longer than this (crashed worker, lost connection): JetStream redelivers. Handlers that take
    # longer keep the message alive with in_progress heartbeats.
    ack_wait: float = 30.0
    concurrency: int = 8
    permanent_errors: tuple[type[BaseException], ...] = field(default=(ValidationError, json.JSONDecodeError))
    # Errors that only say a server was away (the composition root knows the drivers'): the event is retried in
    # place, its message kept alive, until the server is back, without spending a delivery; for at most
    # `unreachable_patience` seconds, after which the error counts as any other.
    unreachable: Callable[[BaseException], bool] | None = None
    unreachable_patience: float = 600.0

    def delay_after(self, attempt: int) -> float:
        if not self.backoff:
            return 0.0
        return float(self.backoff[min(attempt, len(self.backoff)) - 1])

    @property
    def server_max_deliver(self) -> int:
        # One spare delivery: if publishing the dead letter fails on the last try, the event comes back
        # once more instead of being dropped by the server.
        return self.max_attempts + 1

    @property
    def max_ack_pending(self) -> int:
        """Events of one durable consumer in flight at once, across every replica that shares it: beyond
        max_ack_pending / concurrency replicas, more add no throughput to that consumer."""
        return max(self.concurrency * 4, 64)


DeadLetterSink = Callable[[str, DeadLetter], Awaitable[None]]


def _delivery_facts(msg: StreamMessage[Any]) -> tuple[int, int | None, str]:
    raw = msg.raw_message
    try:
        meta = raw.metadata
    except Exception:  # a core-NATS message has no JetStream metadata
        return 1, None, ""
    return int(meta.num_delivered), int(meta.sequence.stream), str(meta.consumer)


def build_dead_letter(
    subject: str, body: bytes, handler: str, error: HandlerError, attempt: int, stream_sequence: int | None
) -> DeadLetter:
    original: dict[str, Any] | None = None
    text: str | None = None
    try:
        decoded = json.loads(body)
        original = decoded if isinstance(decoded, dict) else {"value": decoded}
    except (ValueError, UnicodeDecodeError):
        text = body[:65536].decode("utf-8", errors="replace")
    return DeadLetter(
        original_subject=subject,
        original=original,
        original_text=text,
        handler=handler,
        error=error,
        delivery_count=max(attempt, 1),
        stream_sequence=stream_sequence,
        failed_at=utcnow(),
    )


def dead_letter_for(msg: StreamMessage[Any], error: BaseException, handler: str, attempt: int) -> DeadLetter:
    _, seq, _ = _delivery_facts(msg)
    reason = HandlerError(type=type(error).__name__, message=str(error)[:8000])
    return build_dead_letter(str(msg.raw_message.subject), msg.body, handler, reason, attempt, seq)


class DeadLetterMiddleware:
    """Factory FastStream calls per message; holds the policy and where dead letters go."""

    def __init__(self, policy: DeliveryPolicy, sink: DeadLetterSink) -> None:
        self.policy = policy
        self.sink = sink

    def __call__(self, msg: Any, /, *, context: Any) -> _DeadLetterScope:
        return _DeadLetterScope(msg, context=context, owner=self)


class _DeadLetterScope(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, owner: DeadLetterMiddleware) -> None:
        super().__init__(msg, context=context)
        self.owner = owner

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        attempt, _, consumer = _delivery_facts(msg)
        started = time.perf_counter()
        try:
            with delivering(Delivery(attempt, self.owner.policy.max_attempts)):
                result = await call_next(msg)
        except NackMessage:
            raise
        except Exception as error:
            policy = self.owner.policy
            permanent = isinstance(error, policy.permanent_errors)
            if not permanent and attempt < policy.max_attempts:
                delay = policy.delay_after(attempt)
                facts = {"handler": consumer, "subject": msg.raw_message.subject, "attempt": attempt, "retry_in": delay}
                if isinstance(error, AheadOfState):
                    # Ordering between consumers, not an error: said as what it waits for.
                    log.info("event ahead of its state, will retry", waiting_for=str(error), **facts)
                else:
                    log.warning("handler failed, will retry", error=repr(error), **facts)
                EVENTS_HANDLED.labels(consumer, "retry").inc()
                raise NackMessage(delay=delay) from error
            letter = dead_letter_for(msg, error, consumer, attempt)
            await self.owner.sink(dead_letter_subject(letter.original_subject), letter)
            log.error(
                "event dead-lettered",
                handler=consumer,
                subject=letter.original_subject,
                attempt=attempt,
                permanent=permanent,
                error=repr(error),
            )
            EVENTS_HANDLED.labels(consumer, "dead_letter").inc()
            return None
        finally:
            HANDLER_SECONDS.labels(consumer).observe(time.perf_counter() - started)
        EVENTS_HANDLED.labels(consumer, "ok").inc()
        return result
