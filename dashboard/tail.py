"""The live tail: one shared feed of stream WF for every browser (dashboard.feed), and catch-up replay per browser.

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
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from sse_starlette.event import ServerSentEvent

from dashboard.feed import BATCH, RING_EVENTS, Feed, RenderCache, Rendered
from events.filters import EventFilter, StartAt
from events.subjects import STREAM, STREAM_SUBJECTS

# The feed's ring size and the feed itself are named here too, for what starts a hub.
__all__ = ["RING_EVENTS", "Feed", "TailClient", "TailHub"]

RETRY_MS = 1000
# What a tail opened without a starting point shows first: the stream's newest events.
OPENING_EVENTS = 100


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
        while len(found) < BATCH:
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
