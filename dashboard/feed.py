"""The dashboard's shared feed of stream WF: one ordered consumer whose events are decoded, redacted and
SSE-encoded once, into a ring of the newest events, so twenty browsers tailing live cost one decode per event,
not twenty. The tails (dashboard.tail) follow this ring, and replay from their own consumers what lies before it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections import OrderedDict
from typing import Any, NamedTuple

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sse_starlette.event import ServerSentEvent

from events.filters import EventFacts, facts_of
from events.redaction import may_hold_secret, redact
from events.subjects import STREAM, STREAM_SUBJECTS

log = structlog.get_logger("gxwf.dashboard")

HEARTBEAT_SECONDS = 5.0
RING_EVENTS = 20_000
# Events handed on at once: a batch of the ring, or of a browser's own replay.
BATCH = 512


class Rendered(NamedTuple):
    """One stored event as the dashboard shows it: redacted, with its SSE bytes ready to send, and the facts
    the filters need. Only strings and tuples: tens of thousands in the ring cost the garbage collector nothing
    (decoded events would make every full collection walk millions of objects and stall every browser)."""

    sequence: int
    subject: str
    facts: EventFacts
    text: str
    sse: bytes


def render(sequence: int, subject: str, raw: bytes) -> Rendered:
    try:
        decoded = json.loads(raw)
        event: dict[str, Any] = decoded if isinstance(decoded, dict) else {"type": subject, "data": decoded}
    except (ValueError, UnicodeDecodeError):
        event = {"type": subject, "malformed": True, "data": {"raw": raw[:2000].decode("utf-8", "replace")}}
    if may_hold_secret(raw):
        event = redact(event)
    text = json.dumps({"seq": sequence, "subject": subject, "event": event}, separators=(",", ":"), default=str)
    sse = ServerSentEvent(data=text, id=str(sequence), event="event").encode()
    return Rendered(sequence, subject, facts_of(event), text, sse)


class RenderCache:
    """Browsers replaying the same history: each event is decoded and redacted once."""

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._items: OrderedDict[int, Rendered] = OrderedDict()

    def get(self, sequence: int, subject: str, raw: bytes) -> Rendered:
        found = self._items.get(sequence)
        if found is not None and found.subject == subject:
            return found
        rendered = render(sequence, subject, raw)
        self._items[sequence] = rendered
        if len(self._items) > self.size:
            self._items.popitem(last=False)
        return rendered


class Feed:
    """The newest events of stream WF, in stream order, rendered once; `floor` is the lowest sequence from
    which on every stored event is (or will be) in the ring."""

    def __init__(
        self, nc: Client, js: JetStreamContext, size: int = RING_EVENTS, heartbeat: float = HEARTBEAT_SECONDS
    ) -> None:
        self.nc = nc
        self.heartbeat = heartbeat
        self.js = js
        self.size = size
        self.items: list[Rendered] = []
        self.sequences: list[int] = []
        self.floor = 1
        self.generation = 0  # counts restarts of the stream's numbering
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            info = await self.js.stream_info(STREAM)
            self.floor = int(info.state.last_seq) + 1
        except NotFoundError:
            self.floor = 1  # the handlers create it; the feed subscribes once it exists
        self._task = asyncio.create_task(self._run(), name="dashboard-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def covers(self, wanted: int) -> bool:
        return wanted >= self.floor

    def after(self, wanted: int, limit: int = BATCH) -> list[Rendered]:
        index = bisect.bisect_left(self.sequences, wanted)
        return self.items[index : index + limit]

    async def changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._changed.wait()

    async def _stream_started_over(self) -> bool:
        """Stream WF deleted and created again: its sequences start over below ours. Quiet periods (heartbeats)
        are when this is looked at; the ring is emptied and every open tail ends (browsers reconnect)."""
        info = await self.js.stream_info(STREAM)
        if not self.sequences or int(info.state.last_seq) >= self.sequences[-1]:
            return False
        log.warning("stream WF started over: the dashboard's feed too", last_seq=int(info.state.last_seq))
        self.items, self.sequences = [], []
        self.floor = int(info.state.first_seq or 1)
        self.generation += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        return True

    def _append(self, batch: list[Rendered]) -> None:
        self.items.extend(batch)
        self.sequences.extend(r.sequence for r in batch)
        if len(self.items) > 2 * self.size:
            del self.items[: -self.size]
            del self.sequences[: -self.size]
            self.floor = self.sequences[0]
        # Wake every waiting browser once per batch, then arm a fresh event for the next one.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        """A push consumer without flow control, resumed from the last sequence on any gap.

        nats-py's ordered consumer answers JetStream's flow-control requests from a task that looks every
        250 ms, and the server holds delivery until then: a quarter-second stall now and then for every browser.
        This consumer has no flow control; the consumer sequence, which counts every delivery, shows a lost
        message (a slow-consumer drop), and the feed then starts a new consumer after the last event it has.
        """
        interrupted = False
        while True:
            start = self.sequences[-1] + 1 if self.sequences else self.floor
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox, pending_msgs_limit=1_000_000, pending_bytes_limit=1024 * 2**20)
            consumer: str | None = None
            try:
                config = ConsumerConfig(
                    filter_subjects=list(STREAM_SUBJECTS),
                    deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                    opt_start_seq=start,
                    deliver_subject=inbox,
                    ack_policy=AckPolicy.NONE,
                    max_deliver=1,
                    flow_control=False,
                    mem_storage=True,
                    num_replicas=1,
                    # A quiet stream still sends these: silence means the consumer is gone (a NATS restart).
                    idle_heartbeat=self.heartbeat,
                    # Gone by itself once this process is: nobody listens on its inbox any more.
                    inactive_threshold=60.0,
                )
                consumer = (await self.js.add_consumer(STREAM, config)).name
                if interrupted:
                    log.info("dashboard feed resumed", at=start)
                    interrupted = False
                await self._pump(sub)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # NATS away or the stream recreated: start again where we were
                # Once per outage, not at every attempt while NATS is away.
                if not interrupted:
                    log.warning("dashboard feed interrupted", error=repr(error))
                interrupted = True
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                if consumer is not None:
                    with contextlib.suppress(Exception):
                        await self.js.delete_consumer(STREAM, consumer)

    async def _pump(self, sub: Any) -> None:
        """Until a delivery is missing: render every event once, append them in batches."""
        delivered = 0
        while True:
            try:
                msg = await sub.next_msg(timeout=3 * self.heartbeat)
            except (TimeoutError, nats.errors.TimeoutError):
                log.warning("dashboard feed heard nothing, not even heartbeats: resuming", after=delivered)
                return
            batch: list[Rendered] = []
            while True:
                if _status(msg):
                    if batch == [] and await self._stream_started_over():
                        return
                    if sub.pending_msgs == 0:
                        break
                    msg = await sub.next_msg(timeout=1.0)
                    continue
                meta = msg.metadata
                if int(meta.sequence.consumer) != delivered + 1:
                    if batch:
                        self._append(batch)
                    log.warning("dashboard feed lost a delivery, resuming", after=delivered)
                    return
                delivered += 1
                sequence = int(meta.sequence.stream)
                if not self.sequences or sequence > self.sequences[-1]:
                    batch.append(render(sequence, msg.subject, msg.data))
                if sub.pending_msgs == 0 or len(batch) >= BATCH:
                    break
                msg = await sub.next_msg(timeout=1.0)
            if batch:
                self._append(batch)


def _status(msg: Any) -> bool:
    """A control message of the consumer (idle heartbeat), not an event."""
    headers = msg.headers or {}
    return not msg.data and bool(headers.get("Status"))
