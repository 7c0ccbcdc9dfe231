"""The dashboard's shared feed survives losing its JetStream consumer (as after a NATS restart)."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext

from dashboard.tail import Feed
from tests.backbone.conftest import eventually
from tests.dashboard.conftest import publish_run_requested


async def test_the_feed_resumes_after_its_consumer_vanished(nc: Client, js: JetStreamContext) -> None:
    feed = Feed(nc, js, heartbeat=0.5)
    await feed.start()
    try:
        await publish_run_requested(js, "before")

        async def sequences() -> list[int]:
            return [r.sequence for r in feed.items]

        assert await eventually(sequences, timeout=5) == [1]
        for consumer in await js.consumers_info("WF"):
            await js.delete_consumer("WF", consumer.name)
        await publish_run_requested(js, "after")

        async def both() -> bool:
            return [r.sequence for r in feed.items] == [1, 2]

        await eventually(both, timeout=10)
    finally:
        await feed.stop()
