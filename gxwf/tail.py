"""`gxwf events tail`: events as they happen, or from a sequence, a time or the start, filtered like the
dashboard's tail, for people (Rich) and scripts (JSON lines). Events and dead letters are in two streams, each
numbered from 1: they are merged by the time they were stored, and each line says which stream it is from."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError, NotFoundError
from rich.console import Console
from rich.text import Text

from events.filters import EventFilter, StartAt
from events.permissions import connect_options
from events.reconnect import reconnecting
from events.redaction import may_hold_secret, redact
from events.subjects import DLQ_PREFIX, DLQ_STREAM, STREAM, STREAM_SUBJECTS
from gxwf.time_merge import TimeMerge

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


@dataclass(frozen=True)
class Tailed:
    """One event as tailed: the stream that holds it, its sequence there, and when the stream stored it."""

    stream: str
    sequence: int
    time: datetime
    subject: str
    event: dict[str, Any]

    @property
    def label(self) -> str:
        """`WF#12`, `DLQ#3`: both streams number from 1, so a bare sequence would not say which event it is."""
        return f"{_LABELS.get(self.stream, self.stream)}#{self.sequence}"


Emit = Callable[[Tailed], None]

# The streams a tail reads, each with the subjects it holds; merged in time order.
TAILED_STREAMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (STREAM, tuple(STREAM_SUBJECTS)),
    (DLQ_STREAM, (f"{DLQ_PREFIX}.>",)),
)
_LABELS = {STREAM: "WF", DLQ_STREAM: "DLQ"}


def _overlap(a: list[str], b: list[str]) -> bool:
    """Some subject matches both patterns."""
    for x, y in zip(a, b, strict=False):
        if x == ">" or y == ">":
            return True
        if x != "*" and y != "*" and x != y:
            return False
    return len(a) == len(b)


def _covers(a: list[str], b: list[str]) -> bool:
    """Every subject pattern `b` matches, pattern `a` matches too."""
    for index, x in enumerate(a):
        if x == ">":
            return index < len(b)
        if index >= len(b) or b[index] == ">" or (x != "*" and x != b[index]):
            return False
    return len(a) == len(b)


def stream_filters(patterns: Sequence[str], stream_subjects: Sequence[str]) -> list[str]:
    """The consumer filters for one stream: each pattern narrowed to the stream's subjects, without duplicates
    or filters another one covers (JetStream refuses overlapping filters on one consumer)."""
    chosen: list[str] = []
    for pattern in patterns:
        for held in stream_subjects:
            if _overlap(pattern.split("."), held.split(".")):
                chosen.append(held if _covers(pattern.split("."), held.split(".")) else pattern)
    unique = list(dict.fromkeys(chosen))
    return [f for f in unique if not any(o != f and _covers(o.split("."), f.split(".")) for o in unique)]


async def _config(
    js: JetStreamContext,
    stream: str,
    filters: list[str],
    *,
    replay: bool,
    start: StartAt | None,
    last: int | None,
    whole_stream: bool,
) -> ConsumerConfig:
    config = ConsumerConfig(filter_subjects=filters, deliver_policy=DeliverPolicy.NEW)
    if last is not None:
        # The last N of the whole stream are among its last N sequences; with filters, read it all and keep N.
        stored = (await js.stream_info(stream)).state
        if whole_stream and int(stored.last_seq) > last:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = int(stored.last_seq) - last + 1
        else:
            config.deliver_policy = DeliverPolicy.ALL
    elif start is None or start.new_only:
        config.deliver_policy = DeliverPolicy.ALL if replay else DeliverPolicy.NEW
    elif start.sequence is not None and stream == STREAM:
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = start.sequence
    else:
        # A sequence numbers stream WF only; dead letters are then shown from the time of that event.
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = start.time
    return config


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
    """Print events of streams WF and WF_DLQ merged in the order they were stored, until interrupted, `count`
    events were printed, or `timeout` seconds passed with none.

    From the oldest (`replay`) or from `start` (a stream sequence or a time), `count` is the first N from there.
    Otherwise (new events only) `count` is the last N already stored, printed at once: what someone asking
    for "three events" of a quiet system means (`--since 0s --count N` waits for N new ones instead).
    `subjects` are asked of JetStream (the server drops the rest); `content` filters what arrives, with the
    dashboard's rules. Payloads are redacted.
    """
    from_the_past = replay or (start is not None and not start.new_only)
    last = count if count is not None and not from_the_past else None
    sources: list[tuple[str, list[str], bool]] = []
    for pattern in subjects:
        if not any(stream_filters([pattern], held) for _, held in TAILED_STREAMS):
            known = ", ".join(s for _, subs in TAILED_STREAMS for s in subs)
            raise TailError(f"--subject {pattern}: no stream holds it (streams: {known})")
    for stream, held in TAILED_STREAMS:
        filters = stream_filters(subjects, held)
        if filters:
            sources.append((stream, filters, sorted(filters) == sorted(held)))

    nc = await nats.connect(nats_url, connect_timeout=5, **connect_options(nats_url), **reconnecting("events-tail"))
    queue: asyncio.Queue[tuple[int, Msg]] = asyncio.Queue()
    merge: TimeMerge[Tailed] = TimeMerge(len(sources))
    newest: deque[Tailed] | None = deque(maxlen=last) if last is not None else None
    seen = 0
    try:
        js = nc.jetstream()
        if start is not None and start.sequence is not None:
            start = StartAt(sequence=start.sequence, time=await _time_of(js, start.sequence))
        for index, (stream, filters, whole) in enumerate(sources):
            await _subscribe(js, queue, index, stream, filters, merge, replay, start, last, whole, content)
        while True:
            for item in merge.ready():
                if newest is not None:
                    newest.append(item)
                    continue
                emit(item)
                seen += 1
                if count is not None and seen >= count:
                    return seen
            if newest is not None and merge.all_caught_up:
                break
            try:
                async with asyncio.timeout(timeout):
                    index, msg = await queue.get()
            except TimeoutError:
                break
            merge.add(index, *_received(sources[index][0], msg, content), pending=int(msg.metadata.num_pending))
        for item in newest or ():
            emit(item)
            seen += 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return seen


async def _subscribe(
    js: JetStreamContext,
    queue: asyncio.Queue[tuple[int, Msg]],
    index: int,
    stream: str,
    filters: list[str],
    merge: TimeMerge[Tailed],
    replay: bool,
    start: StartAt | None,
    last: int | None,
    whole: bool,
    content: EventFilter | None,
) -> None:
    async def deliver(msg: Msg) -> None:
        queue.put_nowait((index, msg))

    try:
        config = await _config(js, stream, filters, replay=replay, start=start, last=last, whole_stream=whole)
        sub = await js.subscribe("", stream=stream, ordered_consumer=True, config=config, cb=deliver)
        info = await sub.consumer_info()
    except NotFoundError:
        raise TailError(f"stream {stream} does not exist yet: `gxwf up` or `gxwf handlers run` creates it") from None
    except BadRequestError as error:
        raise TailError(f"--subject {' '.join(filters)}: JetStream refused it ({error.description})") from None
    delivered = info.delivered.consumer_seq if info.delivered is not None else None
    if not info.num_pending and not delivered:
        merge.caught_up(index)  # nothing stored matches: this stream holds no one back


def _received(stream: str, msg: Msg, content: EventFilter | None) -> tuple[datetime, int, Tailed | None]:
    meta = msg.metadata
    sequence = int(meta.sequence.stream)
    event = decode(msg.subject, msg.data)
    if not shown(msg.subject, event, content):
        return meta.timestamp, sequence, None
    event = redact(event) if may_hold_secret(msg.data) else event
    return meta.timestamp, sequence, Tailed(stream, sequence, meta.timestamp, msg.subject, event)


class TailError(Exception):
    """A tail that cannot start as asked (the CLI turns it into one line and exit status 2)."""


def json_emitter() -> Emit:
    def emit(item: Tailed) -> None:
        line = {"stream": item.stream, "seq": item.sequence, "subject": item.subject, "event": item.event}
        print(json.dumps(line, separators=(",", ":"), default=str), flush=True)

    return emit


def rich_emitter(console: Console) -> Emit:
    def emit(item: Tailed) -> None:
        line = Text(f"{item.label:>10} ", style="dim")
        line.append_text(describe(item.event))
        console.print(line)

    return emit
