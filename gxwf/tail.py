"""`gxwf events tail`: events as they happen, or from a sequence, a time or the start, filtered like the
dashboard's tail, for people (Rich) and scripts (JSON lines)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from rich.console import Console
from rich.text import Text

from events.filters import EventFilter, StartAt
from events.redaction import may_hold_secret, redact
from events.subjects import DLQ_PREFIX, STREAM

_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "stopped": "yellow", "requested": "cyan"}
_KEY_FIELDS = (
    "run_id",
    "transfer_process_id",
    "consumer_id",
    "deployment_id",
    "asset_id",
    "exit_code",
    "reason",
)


def describe(event: dict[str, Any]) -> Text:
    """One line a person can read: time, type, and the fields that identify what it is about."""
    etype = str(event.get("type") or event.get("original_subject") or "?")
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    assert isinstance(data, dict)
    details = " ".join(f"{k}={data[k]}" for k in _KEY_FIELDS if data.get(k) not in (None, ""))
    if "error" in data and isinstance(data["error"], dict):
        details += f" error={data['error'].get('type')}: {data['error'].get('message')}"
    stamp = str(event.get("time") or event.get("failed_at") or "")[11:23]
    style = next((v for k, v in _STYLE.items() if etype.endswith(k)), "white")
    if etype.startswith("dlq.") or "original_subject" in event:
        style = "bold red"
    line = Text()
    line.append(f"{stamp:12} ", style="dim")
    line.append(f"{etype:32} ", style=style)
    line.append(details)
    return line


Emit = Callable[[str, dict[str, Any], int | None], None]


def _config(subject: str, replay: bool, start: StartAt | None) -> ConsumerConfig:
    if start is None or start.new_only:
        return ConsumerConfig(deliver_policy=DeliverPolicy.ALL if replay else DeliverPolicy.NEW)
    if start.sequence is not None and not subject.startswith(f"{DLQ_PREFIX}."):
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start.sequence)
    # A sequence numbers stream WF only; dead letters are then shown from the time of that event.
    return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start.time)


async def _time_of(js: JetStreamContext, sequence: int) -> datetime:
    try:
        stored = await js.get_msg(STREAM, sequence)
    except NotFoundError:
        return datetime.now(UTC)
    return stored.time or datetime.now(UTC)


def decode(subject: str, raw: bytes) -> dict[str, Any]:
    try:
        event = json.loads(raw)
    except ValueError:
        return {"type": subject, "data": {"raw": raw[:200].decode("utf-8", "replace")}}
    return event if isinstance(event, dict) else {"type": subject, "data": event}


def shown(subject: str, event: dict[str, Any], content: EventFilter | None) -> bool:
    """The content filter (consumer, transfer, run, text); a dead letter is judged by the event it holds."""
    if content is None or not content.needs_event:
        return True
    original = event.get("original") if subject.startswith(f"{DLQ_PREFIX}.") else None
    target = original if isinstance(original, dict) else event
    return content.matches(str(target.get("type") or subject), target, json.dumps(event, default=str))


async def tail(
    nats_url: str,
    subjects: Sequence[str],
    *,
    replay: bool,
    emit: Emit,
    count: int | None = None,
    timeout: float | None = None,
    content: EventFilter | None = None,
    start: StartAt | None = None,
) -> int:
    """Print events until interrupted, `count` events arrived, or `timeout` seconds passed with none.

    `subjects` are asked of JetStream (the server drops the rest); `content` filters what arrives, with the
    dashboard's rules; `start` (a stream sequence or a time) overrides `replay`. Payloads are redacted.
    """
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=-1)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    seen = 0
    try:
        js = nc.jetstream()
        if start is not None and start.sequence is not None:
            start = StartAt(sequence=start.sequence, time=await _time_of(js, start.sequence))
        for subject in subjects:
            try:
                await js.subscribe(subject, ordered_consumer=True, config=_config(subject, replay, start), cb=queue.put)
            except NotFoundError:
                raise TailError(f"--subject {subject}: no stream holds it (streams: edc.>, wf.>, dlq.>)") from None
        while count is None or seen < count:
            try:
                async with asyncio.timeout(timeout):
                    msg = await queue.get()
            except TimeoutError:
                break
            event = decode(msg.subject, msg.data)
            if not shown(msg.subject, event, content):
                continue
            sequence = int(msg.metadata.sequence.stream) if msg.metadata else None
            emit(msg.subject, redact(event) if may_hold_secret(msg.data) else event, sequence)
            seen += 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return seen


class TailError(Exception):
    """A tail that cannot start as asked (the CLI turns it into one line and exit status 2)."""


def json_emitter() -> Emit:
    def emit(subject: str, event: dict[str, Any], sequence: int | None = None) -> None:
        line = {"subject": subject, "seq": sequence, "event": event}
        print(json.dumps(line, separators=(",", ":"), default=str), flush=True)

    return emit


def rich_emitter(console: Console) -> Emit:
    def emit(subject: str, event: dict[str, Any], sequence: int | None = None) -> None:
        console.print(describe(event))

    return emit
