"""Delivery health: per durable consumer its backlog and redeliveries, the dead letters, and re-publishing one.

Re-publishing keeps the envelope's id. Handlers are idempotent by that id (a store transition records the
causing event id, and the events a handler publishes derive their ids from it), so if the first attempt got
part of the way, the second recognises what was done and publishes the same downstream ids, which JetStream
de-duplicates. A new envelope id would make the same fact look like a second one. The NATS message id
(Nats-Msg-Id, the stream's de-duplication key) is new but deterministic per dead letter: the original id is
still inside the duplicate window and would be dropped, while a second click on the same dead letter is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from events.envelope import derived_id
from events.filters import subject_matches
from events.payloads.dead_letter import DeadLetter
from events.redaction import redact
from events.subjects import DLQ_STREAM, STREAM, STREAM_SUBJECTS

REPUBLISHED_FROM = "Gxwf-Republished-From"


@dataclass
class ConsumerHealth:
    name: str
    subject: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    delivered_seq: int
    ack_floor_seq: int


@dataclass
class Letter:
    sequence: int
    subject: str
    at: datetime | None
    letter: DeadLetter | None
    shown: dict[str, Any]  # redacted, for display

    @property
    def event_id(self) -> str | None:
        original = self.letter.original if self.letter else None
        return str(original.get("id")) if original and original.get("id") else None


@dataclass
class Republished:
    dead_letter_sequence: int
    subject: str
    event_id: str | None
    stream_sequence: int
    duplicate: bool
    message_id: str


class DeadLetterProblem(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


async def consumers(js: JetStreamContext) -> list[ConsumerHealth]:
    """Durable consumers of stream WF (the handlers); ephemeral tails are not listed."""
    rows = []
    for info in await js.consumers_info(STREAM):
        config = info.config
        if not config.durable_name:
            continue
        subject = config.filter_subject or ", ".join(config.filter_subjects or [])
        rows.append(
            ConsumerHealth(
                name=info.name,
                subject=subject,
                pending=int(info.num_pending or 0),
                ack_pending=int(info.num_ack_pending or 0),
                redelivered=int(info.num_redelivered or 0),
                waiting=int(info.num_waiting or 0),
                delivered_seq=int(info.delivered.stream_seq or 0) if info.delivered else 0,
                ack_floor_seq=int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0,
            )
        )
    return sorted(rows, key=lambda r: r.name)


def _letter(sequence: int, subject: str, data: bytes, at: datetime | None) -> Letter:
    try:
        decoded = json.loads(data)
    except ValueError:
        decoded = {"raw": data[:2000].decode("utf-8", "replace")}
    letter: DeadLetter | None = None
    try:
        letter = DeadLetter.model_validate(decoded)
    except ValidationError:
        letter = None
    return Letter(sequence, subject, at, letter, redact(decoded) if isinstance(decoded, dict) else {"value": decoded})


async def dead_letters(js: JetStreamContext, *, limit: int = 50, before: int | None = None) -> tuple[list[Letter], int]:
    """The newest dead letters (older than sequence `before`), newest first, and how many the stream holds."""
    info = await js.stream_info(DLQ_STREAM)
    first, last = int(info.state.first_seq or 0), int(info.state.last_seq or 0)
    found: list[Letter] = []
    sequence = min(last, (before - 1) if before else last)
    while sequence >= max(first, 1) and len(found) < limit:
        try:
            msg = await js.get_msg(DLQ_STREAM, sequence)
        except NotFoundError:
            sequence -= 1
            continue
        found.append(_letter(sequence, str(msg.subject), msg.data or b"", _time(msg)))
        sequence -= 1
    return found, int(info.state.messages or 0)


def _time(msg: Any) -> datetime | None:
    value = getattr(msg, "time", None)
    return value if isinstance(value, datetime) else None


async def dead_letter(js: JetStreamContext, sequence: int) -> Letter:
    try:
        msg = await js.get_msg(DLQ_STREAM, sequence)
    except NotFoundError:
        raise DeadLetterProblem(404, f"no dead letter {sequence} in {DLQ_STREAM}") from None
    return _letter(sequence, str(msg.subject), msg.data or b"", _time(msg))


async def republish(js: JetStreamContext, sequence: int) -> Republished:
    """Put a dead letter's original event back on its subject, byte for byte as it first arrived."""
    found = await dead_letter(js, sequence)
    letter = found.letter
    if letter is None:
        raise DeadLetterProblem(409, f"dead letter {sequence} is not a dead-letter record; nothing to re-publish")
    subject = letter.original_subject
    if not any(subject_matches(pattern, subject) for pattern in STREAM_SUBJECTS):
        raise DeadLetterProblem(409, f"dead letter {sequence}: subject {subject!r} is not one of stream {STREAM}")
    if letter.original is not None:
        body = json.dumps(letter.original, separators=(",", ":")).encode()
    elif letter.original_text is not None:
        body = letter.original_text.encode()
    else:
        raise DeadLetterProblem(409, f"dead letter {sequence} kept no body to re-publish")
    message_id = derived_id("republish", DLQ_STREAM, str(sequence))
    headers = {
        "Nats-Msg-Id": message_id,
        "content-type": "application/cloudevents+json",
        REPUBLISHED_FROM: f"{DLQ_STREAM}:{sequence}",
    }
    ack = await js.publish(subject, body, stream=STREAM, headers=headers)
    return Republished(sequence, subject, found.event_id, int(ack.seq), bool(ack.duplicate), message_id)
