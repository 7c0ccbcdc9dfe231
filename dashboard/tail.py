"""The live tail: one ephemeral ordered JetStream consumer per client, events rendered once and shared.

The SSE event id is the stream sequence, so a browser that reconnects with Last-Event-ID resumes at the next
sequence: nothing missed, nothing doubled. A tail of new events first sends the stream's current last
sequence as a cursor, so even a client that saw no event yet resumes exactly where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sse_starlette.event import ServerSentEvent

from events.filters import EventFilter, StartAt
from events.redaction import may_hold_secret, redact
from events.subjects import STREAM, STREAM_SUBJECTS

RETRY_MS = 1000
_BATCH = 256


@dataclass(frozen=True)
class Rendered:
    """One stored event as the dashboard shows it: redacted, with the JSON text sent to browsers."""

    sequence: int
    subject: str
    event: dict[str, Any]
    text: str


def render(sequence: int, subject: str, raw: bytes) -> Rendered:
    try:
        decoded = json.loads(raw)
        event: dict[str, Any] = decoded if isinstance(decoded, dict) else {"type": subject, "data": decoded}
    except (ValueError, UnicodeDecodeError):
        event = {"type": subject, "malformed": True, "data": {"raw": raw[:2000].decode("utf-8", "replace")}}
    if may_hold_secret(raw):
        event = redact(event)
    text = json.dumps({"seq": sequence, "subject": subject, "event": event}, separators=(",", ":"), default=str)
    return Rendered(sequence, subject, event, text)


class RenderCache:
    """Twenty browsers tailing the same events: each is decoded and redacted once, not twenty times."""

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


def sse(rendered: Rendered) -> bytes:
    return ServerSentEvent(data=rendered.text, id=str(rendered.sequence), event="event").encode()


def cursor(sequence: int) -> bytes:
    """An id-only event: the browser records it as its Last-Event-ID and shows nothing."""
    return ServerSentEvent(data=str(sequence), id=str(sequence), event="cursor").encode()


@dataclass(eq=False)
class TailClient:
    """A connected tail; `drop` ends its stream (the browser then reconnects with Last-Event-ID)."""

    filter: EventFilter
    drop: asyncio.Event = field(default_factory=asyncio.Event)
    sent: int = 0


class TailHub:
    def __init__(self, js: JetStreamContext, *, max_clients: int = 200, ping_seconds: float = 10.0) -> None:
        self.js = js
        self.max_clients = max_clients
        self.ping_seconds = ping_seconds
        self.cache = RenderCache()
        self.clients: set[TailClient] = set()
        self.opened = 0  # tails served since the start, reconnects included
        self.closing = asyncio.Event()

    @property
    def full(self) -> bool:
        return len(self.clients) >= self.max_clients

    def drop_all(self) -> int:
        """End every open tail stream (operators' browsers reconnect and resume); returns how many."""
        for client in self.clients:
            client.drop.set()
        return len(self.clients)

    async def open(self, client: TailClient, start: StartAt) -> AsyncIterator[bytes]:
        """Create the client's consumer now (so a failure is an HTTP error, not a broken stream), then stream."""
        sub, first_cursor = await self._consumer(client.filter, start)
        return self.stream(client, sub, first_cursor)

    async def _consumer(self, flt: EventFilter, start: StartAt) -> tuple[Any, int | None]:
        config = ConsumerConfig(filter_subjects=flt.stream_subjects(STREAM_SUBJECTS))
        first_cursor: int | None = None
        if start.sequence is not None:
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, start.sequence
        elif start.time is not None:
            config.deliver_policy, config.opt_start_time = DeliverPolicy.BY_START_TIME, start.time
        else:
            info = await self.js.stream_info(STREAM)
            first_cursor = int(info.state.last_seq)
            config.deliver_policy, config.opt_start_seq = DeliverPolicy.BY_START_SEQUENCE, first_cursor + 1
        sub = await self.js.subscribe(
            "", stream=STREAM, ordered_consumer=True, config=config, pending_msgs_limit=100_000
        )
        return sub, first_cursor

    async def stream(self, client: TailClient, sub: Any, first_cursor: int | None) -> AsyncIterator[bytes]:
        """SSE bytes: the retry hint, a cursor, then batches of matching events; pings while idle."""
        self.clients.add(client)
        self.opened += 1
        idle = 0.0
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            if first_cursor is not None:
                yield cursor(first_cursor)
            while not client.drop.is_set() and not self.closing.is_set():
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    idle += 0.5
                    if idle >= self.ping_seconds:
                        idle = 0.0
                        yield b": ping\n\n"
                    continue
                idle = 0.0
                chunk = bytearray()
                while True:
                    self._add(client, msg, chunk)
                    if sub.pending_msgs == 0 or len(chunk) > 256 * 1024:
                        break
                    msg = await sub.next_msg(timeout=0.5)
                if chunk:
                    yield bytes(chunk)
        finally:
            self.clients.discard(client)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    def _add(self, client: TailClient, msg: Any, chunk: bytearray) -> None:
        sequence = int(msg.metadata.sequence.stream)
        rendered = self.cache.get(sequence, msg.subject, msg.data)
        if client.filter.matches(rendered.subject, rendered.event, rendered.text):
            chunk += sse(rendered)
            client.sent += 1
