"""What survives a stop: data in a state directory does; a throwaway directory does not exist any more."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig
from pymongo import AsyncMongoClient

from devstack import EmbeddedStack, StackEndpoints, StackError
from tests.devstack.helpers import identities, s3_client, still_running


async def test_data_survives_a_restart_with_the_same_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with EmbeddedStack(state) as first:
        nc = await nats.connect(first.nats)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="KEPT", subjects=["kept.>"]))
        await js.publish("kept.one", b"in the stream")
        await nc.close()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(first.mongo)
        await mongo.devstack.kept.insert_one({"_id": "one", "text": "in the database"})
        await mongo.close()
        async with s3_client(first) as s3:
            await s3.put_object(Bucket=first.s3_bucket, Key="kept.txt", Body=b"in the bucket")

        with pytest.raises(StackError, match=r"in use by another stack"):
            await EmbeddedStack(state).start()
        first_servers = identities(first.pids.values())
    assert still_running(first_servers, timeout=0) == []

    async with EmbeddedStack(state) as second:
        nc = await nats.connect(second.nats)
        message = await nc.jetstream().get_msg("KEPT", 1)
        await nc.close()
        mongo = AsyncMongoClient(second.mongo)
        document = await mongo.devstack.kept.find_one({"_id": "one"})
        await mongo.close()
        async with s3_client(second) as s3:
            response = await s3.get_object(Bucket=second.s3_bucket, Key="kept.txt")
            body = await response["Body"].read()

    assert message.data == b"in the stream"
    assert document == {"_id": "one", "text": "in the database"}
    assert body == b"in the bucket"
    assert {path.name for path in (state / "logs").iterdir()} == {"nats.log", "secantusd.log", "seaweedfs.log"}


async def test_throwaway_state_dir_is_removed_on_stop(stack: StackEndpoints) -> None:
    # Only NATS is started, the quickest; the others come from the session's stack.
    embedded = EmbeddedStack(None, mongo_url=stack.mongo, s3_endpoint=stack.s3)
    endpoints = await embedded.start()
    state = embedded.state_dir
    try:
        assert state is not None
        assert (state / "nats" / "jetstream").is_dir()
        assert (state / "logs" / "nats.log").stat().st_size > 0
        assert set(endpoints.pids) == {"nats"}
        assert (endpoints.mongo, endpoints.s3) == (stack.mongo, stack.s3)
    finally:
        await embedded.stop()
    assert not state.exists()


async def test_given_urls_are_used_and_nothing_is_started(stack: StackEndpoints) -> None:
    external = EmbeddedStack(None, nats_url=stack.nats, mongo_url=stack.mongo, s3_endpoint=stack.s3, s3_bucket="other")
    async with external as endpoints:
        assert endpoints.pids == {}
        assert (endpoints.nats, endpoints.mongo, endpoints.s3) == (stack.nats, stack.mongo, stack.s3)
        assert endpoints.nats_monitor is None
        assert endpoints.s3_bucket == "other"
