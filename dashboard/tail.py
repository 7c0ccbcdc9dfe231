"""The live tail: one shared feed of stream WF for every browser, and catch-up replay per browser.

The feed is one ordered JetStream consumer whose events are decoded, redacted and SSE-encoded once, into a
ring of the newest events; twenty browsers tailing live cost one decode per event, not twenty. A browser that
starts (or falls) behind the ring replays from its own ephemeral ordered consumer until it reaches the ring,
then follows the ring. Its position is always "the next stream sequence I need": the SSE event id is the stream
sequence, so one reconnecting with Last-Event-ID resumes at the next one, nothing missed, nothing doubled.
A tail opened without a starting point begins with the stream's newest 100 events, after a cursor (an id-only
event) naming the sequence before them, so even a browser shown none of them resumes exactly where it was.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from sse_starlette.event import ServerSentEvent

from events.filters import EventFacts, EventFilter, StartAt, facts_of
from events.redaction import may_hold_secret, redact
from events.subjects import STREAM, STREAM_SUBJECTS

log = structlog.get_logger("gxwf.dashboard")

RETRY_MS = 1000
HEARTBEAT_SECONDS = 5.0
RING_EVENTS = 20_000
# What a tail opened without a starting point shows first: the stream's newest events.
OPENING_EVENTS = 100
_BATCH = 512


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


def cursor(sequence: int) -> bytes:
    """An id-only event: the browser records it as its Last-Event-ID and shows nothing."""
    return ServerSentEvent(data=str(sequence), id=str(sequence), event="cursor").encode()


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

    def after(self, wanted: int, limit: int = _BATCH) -> list[Rendered]:
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
                await self._pump(sub)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # NATS away or the stream recreated: start again where we were
                log.warning("dashboard feed interrupted", error=repr(error))
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
                if sub.pending_msgs == 0 or len(batch) >= _BATCH:
                    break
                msg = await sub.next_msg(timeout=1.0)
            if batch:
                self._append(batch)


def _status(msg: Any) -> bool:
    """A control message of the consumer (idle heartbeat), not an event."""
    headers = msg.headers or {}
    return not msg.data and bool(headers.get("Status"))


@dataclass(eq=False)
class TailClient:
    """A connected tail; `drop` ends its stream (the browser then reconnects with Last-Event-ID)."""

    filter: EventFilter
    drop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0


class TailHub:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        max_clients: int = 200,
        ping_seconds: float = 10.0,
        ring_events: int = RING_EVENTS,
        opening_events: int = OPENING_EVENTS,
    ) -> None:
        self.js = js
        self.opening_events = opening_events
        self.max_clients = max_clients
        self.ping_seconds = ping_seconds
        self.cache = RenderCache()
        self.feed = Feed(nc, js, ring_events)
        self.clients: set[TailClient] = set()
        self.opened = 0  # tails served since the start, reconnects included
        self.closing = asyncio.Event()

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        self.closing.set()
        self.drop_all()
        await self.feed.stop()

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def drop_all(self) -> int:
        """End every open tail stream (operators' browsers reconnect and resume); returns how many."""
        for client in self.clients:
            client.drop.set()
        return len(self.clients)

    async def open(self, client: TailClient, start: StartAt) -> AsyncIterator[bytes]:
        """Resolve where the client starts now (so a missing stream is an HTTP error, not a broken stream)."""
        first_cursor: int | None = None
        catch_up: Any = None
        wanted: int | None
        if start.sequence is not None:
            wanted = start.sequence
            last = int((await self.js.stream_info(STREAM)).state.last_seq)
            if wanted > last + 1:  # an id from before the stream started over: go on from now
                first_cursor, wanted = last, last + 1
        elif start.time is not None:
            # Where a time falls in the stream is known once its first event arrives: replay until then.
            catch_up = await self._replay(DeliverPolicy.BY_START_TIME, start)
            wanted = None
        else:
            # No starting point: the newest events first, then live, so the page never opens empty on a quiet
            # system. The cursor before them says where a reconnect resumes even if none of them matches.
            stored = (await self.js.stream_info(STREAM)).state
            last = int(stored.last_seq)
            wanted = max(int(stored.first_seq or 1), last - self.opening_events + 1, 1)
            first_cursor = wanted - 1 if wanted > 1 else None
        return self.stream(client, wanted, first_cursor, catch_up)

    async def _replay(self, policy: DeliverPolicy, start: StartAt) -> Any:
        config = ConsumerConfig(filter_subjects=list(STREAM_SUBJECTS), deliver_policy=policy)
        if policy is DeliverPolicy.BY_START_TIME:
            config.opt_start_time = start.time
        else:
            config.opt_start_seq = start.sequence
        return await self.js.subscribe(
            "", stream=STREAM, ordered_consumer=True, config=config, pending_msgs_limit=20_000
        )

    async def stream(
        self, client: TailClient, wanted: int | None, first_cursor: int | None, catch_up: Any
    ) -> AsyncIterator[bytes]:
        """SSE bytes: the retry hint, a cursor, then batches of matching events; pings while idle."""
        self.clients.add(client)
        self.opened += 1
        generation = self.feed.generation
        idle = 0.0
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            if first_cursor is not None:
                yield cursor(first_cursor)
            while not client.drop.is_set() and not self.closing.is_set() and generation == self.feed.generation:
                if catch_up is None and wanted is not None and self.feed.covers(wanted):
                    batch = self.feed.after(wanted)
                    if not batch:
                        await self.feed.changed(0.5)
                        idle += 0.5
                        if idle >= self.ping_seconds:
                            idle = 0.0
                            yield b": ping\n\n"
                        continue
                    wanted = batch[-1].sequence + 1
                    idle = 0.0
                    chunk = self._matching(client, batch)
                    if chunk:
                        yield chunk
                    continue
                if catch_up is None:  # fell behind the ring (or started before it): replay from where it is
                    catch_up = await self._replay(DeliverPolicy.BY_START_SEQUENCE, StartAt(sequence=wanted or 1))
                replayed, wanted, done = await self._catch_up(catch_up, wanted)
                if replayed:
                    idle = 0.0
                    chunk = self._matching(client, replayed)
                    if chunk:
                        yield chunk
                else:
                    idle += 0.5
                    if idle >= self.ping_seconds:
                        idle = 0.0
                        yield b": ping\n\n"
                if done:
                    with contextlib.suppress(Exception):
                        await catch_up.unsubscribe()
                    catch_up = None
        finally:
            self.clients.discard(client)
            if catch_up is not None:
                with contextlib.suppress(Exception):
                    await catch_up.unsubscribe()

    async def _catch_up(self, sub: Any, wanted: int | None) -> tuple[list[Rendered], int | None, bool]:
        """Events from the client's own consumer; done once the next one is in the ring. `wanted` is None
        until a time-started replay saw its first event."""
        found: list[Rendered] = []
        while len(found) < _BATCH:
            try:
                msg = await sub.next_msg(timeout=0.5 if not found else 0.05)
            except (TimeoutError, nats.errors.TimeoutError):
                # Quiet: done if the ring already starts at or below where the client is; otherwise the
                # consumer still has to hand over the ring's first event, and the switch happens then.
                return found, wanted, wanted is not None and self.feed.covers(wanted)
            sequence = int(msg.metadata.sequence.stream)
            if wanted is not None and sequence < wanted:
                continue
            if self.feed.covers(sequence):
                return found, sequence, True
            found.append(self.cache.get(sequence, msg.subject, msg.data))
            wanted = sequence + 1
        return found, wanted, False

    def _matching(self, client: TailClient, batch: list[Rendered]) -> bytes:
        flt = client.filter
        if not flt.subjects and not flt.needs_event:
            client.sent += len(batch)
            return b"".join(r.sse for r in batch)
        chosen = [r.sse for r in batch if flt.matches_facts(r.subject, r.facts, r.text)]
        client.sent += len(chosen)
        return b"".join(chosen)
