"""Bounded redelivery with backoff, then the dead-letter subject; other events keep flowing meanwhile."""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig

from events.bus import Bus
from events.delivery import DeliveryPolicy
from events.envelope import Envelope, new_event
from events.payloads.common import Payload
from tests.backbone.conftest import eventually, stream_events

SUBJECT = "wf.test.delivery"

if TYPE_CHECKING:
    from devstack import StackEndpoints


class Job(Payload):
    n: int
    boom: bool = False


@pytest.fixture
async def flaky(
    stack: StackEndpoints, js: JetStreamContext
) -> AsyncIterator[tuple[Bus, collections.Counter[int], list[int]]]:
    attempts: collections.Counter[int] = collections.Counter()
    handled: list[int] = []

    async def handler(event: Envelope[Any]) -> None:
        job: Job = event.data
        attempts[job.n] += 1
        if job.boom:
            raise RuntimeError(f"boom {job.n}")
        handled.append(job.n)

    bus = Bus(stack.nats, DeliveryPolicy(max_attempts=3, backoff=(0.2, 0.4), ack_wait=2.0, concurrency=4))
    bus.subscribe(subject=SUBJECT, durable="test-delivery", payload=Job, handler=handler)
    await bus.broker.start()
    yield bus, attempts, handled
    await bus.broker.stop()


async def test_a_handler_that_always_raises_dead_letters_after_max_attempts(
    flaky: tuple[Bus, collections.Counter[int], list[int]], js: JetStreamContext
) -> None:
    bus, attempts, handled = flaky
    poison = new_event(SUBJECT, Job(n=0, boom=True))
    await bus.publish(poison)
    for n in range(1, 6):
        await bus.publish(new_event(SUBJECT, Job(n=n)))

    letters = await eventually(lambda: stream_events(js, "dlq.>", wait=False))
    assert len(letters) == 1
    letter = letters[0]
    assert letter["original_subject"] == SUBJECT
    assert letter["original"]["id"] == poison.id
    assert letter["handler"] == "test-delivery"
    assert letter["error"] == {"type": "RuntimeError", "message": "boom 0"}
    assert letter["delivery_count"] == 3
    assert attempts[0] == 3
    # The poison event did not hold up the others.
    assert sorted(handled) == [1, 2, 3, 4, 5]

    await bus.publish(new_event(SUBJECT, Job(n=6)))
    await eventually(lambda: _contains(handled, 6))
    assert attempts[0] == 3  # given up for good: never redelivered after the dead letter


async def test_malformed_events_are_dead_lettered_at_once_with_the_reason(
    flaky: tuple[Bus, collections.Counter[int], list[int]], js: JetStreamContext
) -> None:
    bus, attempts, handled = flaky
    await js.publish(SUBJECT, b"{not json")
    await js.publish(SUBJECT, b'{"specversion": "1.0", "id": "x1", "type": "wf.test.delivery"}')
    await js.publish(SUBJECT, b'{"specversion": "1.0", "id": "x2", "type": "t", "data": {"n": "seven"}}')

    letters = await eventually(lambda: _at_least(js, 3))
    by_type = sorted(letter["error"]["type"] for letter in letters)
    assert by_type == ["JSONDecodeError", "ValidationError", "ValidationError"]
    assert all(letter["delivery_count"] == 1 for letter in letters)
    assert letters[0]["original_text"] == "{not json"
    assert (
        "data" in next(x for x in letters if x.get("original", {}) and x["original"]["id"] == "x1")["error"]["message"]
    )
    assert handled == [] and not attempts

    await bus.publish(new_event(SUBJECT, Job(n=9)))
    await eventually(lambda: _contains(handled, 9))


async def _contains(items: list[int], value: int) -> bool:
    return value in items


async def _at_least(js: JetStreamContext, count: int) -> list[dict[str, Any]] | None:
    letters = await stream_events(js, "dlq.>", wait=False)
    return letters if len(letters) >= count else None


async def test_an_event_no_worker_ever_acknowledged_is_dead_lettered(
    flaky: tuple[Bus, collections.Counter[int], list[int]], js: JetStreamContext
) -> None:
    """A worker that dies on every delivery never raises; JetStream's max-deliveries advisory catches it."""
    bus, _, _ = flaky
    await bus.forward_exhausted_deliveries()
    subject = "wf.test.crashing"
    crashing = await js.pull_subscribe(
        subject, durable="test-crashing", config=ConsumerConfig(max_deliver=2, ack_wait=0.5)
    )
    poison = new_event(subject, Job(n=1))
    await bus.publish(poison)

    async def exhausted() -> list[dict[str, Any]] | None:
        with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
            await crashing.fetch(1, timeout=0.6)  # take it and "crash": never ack
        return await _at_least(js, 1)

    (letter,) = await eventually(exhausted)
    assert letter["original_subject"] == subject
    assert letter["original"]["id"] == poison.id
    assert letter["handler"] == "test-crashing"
    assert letter["error"]["type"] == "MaxDeliveriesExceeded"
    assert letter["delivery_count"] == 2
