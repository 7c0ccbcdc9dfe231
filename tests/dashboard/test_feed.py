"""The dashboard's shared feed survives losing its JetStream consumer (as after a NATS restart) and stream WF
starting over."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import JetStreamContext

from dashboard.tail import Feed
from events.streams import ensure_streams
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


async def test_the_feed_follows_stream_wf_starting_over(nc: Client, js: JetStreamContext) -> None:
    feed = Feed(nc, js, heartbeat=0.5)
    await feed.start()
    try:
        for index in range(3):
            await publish_run_requested(js, f"first-life-{index}")

        async def three() -> bool:
            return [r.sequence for r in feed.items] == [1, 2, 3]

        await eventually(three, timeout=5)
        await js.delete_stream("WF")
        await ensure_streams(js)
        await publish_run_requested(js, "second-life")

        async def restarted() -> bool:
            return feed.generation == 1 and [r.sequence for r in feed.items] == [1]

        await eventually(restarted, timeout=10)
        assert "second-life" in feed.items[0].text
    finally:
        await feed.stop()
