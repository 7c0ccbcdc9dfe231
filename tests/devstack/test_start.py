"""A started stack: every server answers its clients, and only on the loopback interface."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import nats
import psutil
from pymongo import AsyncMongoClient

from devstack import StackEndpoints
from tests.devstack.helpers import s3_client


async def test_nats_answers_with_jetstream(stack: StackEndpoints) -> None:
    nc = await nats.connect(stack.nats)
    try:
        info = await nc.jetstream().account_info()
    finally:
        await nc.close()
    assert info.limits is not None


async def test_mongo_pings_stores_and_finds(stack: StackEndpoints) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo)
    database = f"devstack_{uuid.uuid4().hex[:8]}"
    try:
        assert (await client.admin.command("ping"))["ok"] == 1
        await client[database].things.insert_one({"_id": "a", "colour": "green"})
        assert await client[database].things.find_one({"colour": "green"}) == {"_id": "a", "colour": "green"}
    finally:
        await client.drop_database(database)
        await client.close()


async def test_mongo_gives_transactions_and_change_streams(stack: StackEndpoints) -> None:
    """What the embedded server must offer beyond plain CRUD: it advertises a one-node replica set."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.mongo)
    things = client[f"devstack_{uuid.uuid4().hex[:8]}"].things
    try:
        await things.insert_one({"_id": "before"})
        async with await things.watch(max_await_time_ms=200) as changes:
            async with client.start_session() as session, await session.start_transaction():
                await things.insert_one({"_id": "committed"}, session=session)
            try:
                async with client.start_session() as session, await session.start_transaction():
                    await things.insert_one({"_id": "rolled-back"}, session=session)
                    raise RuntimeError("abort")
            except RuntimeError:
                pass
            change = await changes.try_next()
            while change is None:
                change = await changes.try_next()
        assert change["documentKey"] == {"_id": "committed"}
        assert sorted([doc["_id"] async for doc in things.find()]) == ["before", "committed"]
    finally:
        await client.drop_database(things.database.name)
        await client.close()


async def test_s3_stores_and_returns_objects_in_the_stack_bucket(stack: StackEndpoints) -> None:
    key = f"devstack/{uuid.uuid4().hex}.txt"
    async with s3_client(stack) as s3:
        await s3.put_object(Bucket=stack.s3_bucket, Key=key, Body=b"hello")
        try:
            response = await s3.get_object(Bucket=stack.s3_bucket, Key=key)
            assert await response["Body"].read() == b"hello"
        finally:
            await s3.delete_object(Bucket=stack.s3_bucket, Key=key)


async def test_embedded_s3_takes_more_buckets(stack: StackEndpoints) -> None:
    """SeaweedFS gives every bucket its own volumes; a handful of buckets must not exhaust them."""
    if "s3" not in stack.pids:
        return  # an external S3 is not ours to fill with buckets
    buckets = [f"devstack-{uuid.uuid4().hex[:12]}" for _ in range(4)]
    async with s3_client(stack) as s3:
        for bucket in buckets:
            await s3.create_bucket(Bucket=bucket)
            await s3.put_object(Bucket=bucket, Key="k", Body=bucket.encode())
        for bucket in buckets:
            response = await s3.get_object(Bucket=bucket, Key="k")
            assert await response["Body"].read() == bucket.encode()
            await s3.delete_object(Bucket=bucket, Key="k")
            await s3.delete_bucket(Bucket=bucket)


def test_started_servers_listen_only_on_loopback(stack: StackEndpoints) -> None:
    urls: dict[str, list[str | None]] = {
        "nats": [stack.nats, stack.nats_monitor],
        "mongo": [stack.mongo],
        "s3": [stack.s3],
    }
    for role, pid in stack.pids.items():
        assert {urlsplit(url).hostname for url in urls[role] if url} == {"127.0.0.1"}, urls[role]
        listening = [
            conn.laddr for conn in psutil.Process(pid).net_connections(kind="inet") if conn.status == psutil.CONN_LISTEN
        ]
        assert listening, f"{role} listens nowhere"
        assert {address.ip for address in listening} == {"127.0.0.1"}, (role, listening)
