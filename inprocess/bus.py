"""The declared handlers run in this process, on in-memory ports, as the runtime runs them on JetStream.

What the runtime gets from JetStream and FastStream is kept: a publish with an id already stored is dropped (the
duplicate window, here as long as the test), each subscription matching an event's subject gets it (NATS
wildcards), a site's own subscriptions (per_site) once per site and the shared ones once, the envelope
crosses as JSON into the subscription's payload model, a malformed event or a handler that keeps failing ends as
a dead letter after the delivery policy's attempts. Subscriptions and periodic passes are the declared ones
(handlers.subscriptions.SUBSCRIPTIONS and PERIODIC, the tables the runtime wires), each acting under the CloudEvents
source the runtime gives it. Everything else is up to the test driver, deterministically: deliveries go in publish
order until nothing is left, the periodic passes (dispatcher, watcher) run when asked, and any event can be
delivered again, held back or delivered late.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from events.envelope import Envelope
from events.wire import encode
from handlers.context import HandlerContext
from handlers.declare import Periodic, source_of
from handlers.subscriptions import PERIODIC, SUBSCRIPTIONS, Subscription
from inprocess.doubles import RecordingSink

_PERMANENT: tuple[type[BaseException], ...] = (ValidationError, json.JSONDecodeError)
# The passes `settle` runs in turn, by their declared names: admitting queued runs, then judging running ones.
SETTLE_PASSES: tuple[str, ...] = ("jobs-dispatcher", "jobs-watcher")


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, a trailing `>` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)


@dataclass(frozen=True)
class Delivery:
    subscription: Subscription
    ctx: HandlerContext
    event: Envelope[Any]
    attempt: int = 1
    redelivery: bool = False

    @property
    def durable(self) -> str:
        site = self.ctx.compute.site if self.ctx.compute is not None else None
        sub = self.subscription
        return f"{sub.durable}-{site}" if sub.per_site and site else sub.durable


@dataclass(frozen=True)
class DeadLetter:
    durable: str
    event: Envelope[Any]
    error: BaseException
    attempts: int


@dataclass
class InProcessBus:
    """An EventSink that delivers to the declared handlers; build the contexts with `events=bus`, then
    `attach` them (the first one also takes the subscriptions that are not per site)."""

    subscriptions: Sequence[Subscription] = SUBSCRIPTIONS
    passes: Sequence[Periodic] = PERIODIC
    max_attempts: int = 5
    # Every delivery is made a second time, after the first was handled: a redelivery after a crash before the ack.
    deliver_twice: bool = False
    contexts: list[HandlerContext] = field(default_factory=list)
    # Every publish attempt, duplicates included.
    attempts: RecordingSink = field(default_factory=RecordingSink)
    # What the stream kept: one event per id, in publish order.
    stream: list[Envelope[Any]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    handled: list[Delivery] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)
    _queue: deque[Delivery] = field(default_factory=deque)
    _held: list[Delivery] = field(default_factory=list)
    _holding: list[tuple[str, str | None]] = field(default_factory=list)

    def attach(self, ctx: HandlerContext) -> HandlerContext:
        if ctx.events is not self:
            raise ValueError("the context must publish to this bus (events=bus)")
        self.contexts.append(ctx)
        return ctx

    async def publish(self, event: Envelope[Any]) -> None:
        await self.attempts.publish(event)
        if event.id in self._ids:
            return  # a duplicate inside JetStream's window: acked, not stored, delivered to nobody
        self._ids.add(event.id)
        self.stream.append(event)
        self._queue.extend(self.deliveries(event))

    def forget_ids(self) -> None:
        """The duplicate window has passed: an id published again is stored and delivered again."""
        self._ids.clear()

    def deliveries(self, event: Envelope[Any]) -> list[Delivery]:
        if not self.contexts:
            raise RuntimeError("attach a handler context first")
        found: list[Delivery] = []
        for sub in self.subscriptions:
            if not subject_matches(sub.subject, event.type):
                continue
            if sub.per_site:
                sites: dict[str | None, HandlerContext] = {}
                for ctx in self.contexts:
                    sites.setdefault(ctx.compute.site if ctx.compute is not None else None, ctx)
                found.extend(Delivery(sub, ctx, event) for ctx in sites.values())
            else:
                found.append(Delivery(sub, self.contexts[0], event))
        return found

    def hold(self, subject: str, *, durable: str | None = None) -> None:
        """Deliveries of events on this subject (to every subscription, or to `durable` only) wait until
        `release`: facts that arrive late."""
        self._holding.append((subject, durable))

    def release(self, *, reverse: bool = False) -> int:
        """Stop holding; what was held is delivered next, in publish order or reversed."""
        held = list(reversed(self._held)) if reverse else list(self._held)
        self._held.clear()
        self._holding.clear()
        self._queue.extendleft(reversed(held))
        return len(held)

    def redeliver(self, event: Envelope[Any] | str, durable: str | None = None) -> int:
        """Deliver a stored event again to its subscriptions (or only to `durable`), as JetStream redelivers an
        unacked message; returns how many deliveries were queued."""
        event_id = event if isinstance(event, str) else event.id
        stored = next((e for e in self.stream if e.id == event_id), None)
        if stored is None:
            raise KeyError(f"no stored event {event_id}")
        again = [
            Delivery(d.subscription, d.ctx, stored, redelivery=True)
            for d in self.deliveries(stored)
            if durable is None or d.durable == durable
        ]
        self._queue.extend(again)
        return len(again)

    async def run_until_quiet(self, *, limit: int = 10_000) -> int:
        """Deliver until nothing is left (held deliveries aside); returns how many deliveries were made."""
        done = 0
        while self._queue:
            delivery = self._queue.popleft()
            if not delivery.redelivery and self._held_back(delivery):
                self._held.append(delivery)
                continue
            await self._deliver(delivery)
            done += 1
            if done >= limit:
                raise RuntimeError(f"not quiet after {limit} deliveries: handlers keep publishing")
        return done

    def _held_back(self, delivery: Delivery) -> bool:
        return any(
            subject_matches(subject, delivery.event.type) and durable in (None, delivery.durable)
            for subject, durable in self._holding
        )

    async def _deliver(self, delivery: Delivery) -> None:
        sub = delivery.subscription
        try:
            # As over the wire: JSON into the subscription's own payload model.
            event = Envelope[sub.payload].model_validate_json(encode(delivery.event))  # type: ignore[name-defined]
            await sub.handle(event, delivery.ctx.acting_as(source_of(sub.group)))
        except Exception as error:
            if isinstance(error, _PERMANENT) or delivery.attempt >= self.max_attempts:
                self.dead_letters.append(DeadLetter(delivery.durable, delivery.event, error, delivery.attempt))
                return
            # NAK with backoff: it comes back after what is queued now.
            self._queue.append(
                Delivery(sub, delivery.ctx, delivery.event, delivery.attempt + 1, redelivery=delivery.redelivery)
            )
            return
        self.handled.append(delivery)
        if self.deliver_twice and not delivery.redelivery:
            self._queue.append(Delivery(sub, delivery.ctx, delivery.event, redelivery=True))

    def of(self, subject: str) -> list[Envelope[Any]]:
        """Stored events on a subject (wildcards allowed), oldest first."""
        return [event for event in self.stream if subject_matches(subject, event.type)]

    async def periodic(self, *names: str) -> int:
        """One pass of each named periodic pass (as declared: `jobs-watcher`, ...) in every attached context that
        has a compute site, as the runtime's loops run them; returns what the passes report."""
        declared = {loop.name: loop for loop in self.passes}
        unknown = [name for name in names if name not in declared]
        if unknown:
            raise KeyError(f"no periodic pass declared as {', '.join(unknown)}")
        total = 0
        for ctx in self._site_contexts():
            for name in names:
                loop = declared[name].start(ctx.acting_as(source_of(name)))
                try:
                    total += await loop.pass_once()
                finally:
                    await loop.close()
        return total

    async def settle(self, *, rounds: int = 50) -> int:
        """Deliveries and the jobs passes (dispatcher, then watcher) in turn until a round stores no new event:
        what the runtime reaches once its loops find nothing more to do."""
        total = await self.run_until_quiet()
        for _ in range(rounds):
            before = len(self.stream)
            for name in SETTLE_PASSES:
                await self.periodic(name)
                total += await self.run_until_quiet()
            if len(self.stream) == before:
                return total
        raise RuntimeError(f"still publishing after {rounds} rounds of the periodic passes")

    def _site_contexts(self) -> Iterable[HandlerContext]:
        seen: set[str] = set()
        for ctx in self.contexts:
            if ctx.compute is not None and ctx.compute.site not in seen:
                seen.add(ctx.compute.site)
                yield ctx
