"""Fixtures for the backbone: fresh streams and a fresh database per test, on the session's real servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from adapters.mongo_store import MongoStateStore
from events.streams import StreamSettings, ensure_streams
from events.subjects import DLQ_STREAM, STREAM
from fakekube import FakeKubeServer
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RunDocument
from tests.backbone.kube import fake_cluster

if TYPE_CHECKING:
    from devstack import StackEndpoints


def s3_keys(stack: StackEndpoints) -> dict[str, str]:
    """The embedded S3's keys as settings; none for an S3 of your own (GXWF_S3_ACCESS_KEY/SECRET_KEY then)."""
    if stack.s3_access_key is None or stack.s3_secret_key is None:
        return {}
    return {"s3_access_key": stack.s3_access_key, "s3_secret_key": stack.s3_secret_key}


@pytest.fixture
def settings(stack: StackEndpoints, tmp_path: Path) -> Settings:
    return Settings(
        **s3_keys(stack),  # type: ignore[arg-type]
        nats_url=stack.nats,
        mongo_url=stack.mongo,
        s3_endpoint=stack.s3,
        mongo_database=f"t_{uuid.uuid4().hex[:12]}",
        state_dir=tmp_path / "state",
        max_attempts=3,
        backoff_seconds=[0.1, 0.2],
        ack_wait_seconds=2.0,
        watch_interval_seconds=0.1,
        dispatch_interval_seconds=0.05,
        duplicate_window_seconds=120.0,
        # What a Kubernetes site's deployment handlers need; the gateway itself is started by the tests that use it.
        tenant_gateway_url="http://127.0.0.1:9",
        gateway_key=SecretStr("test-gateway-key"),
    )


@pytest.fixture
def endpoints(stack: StackEndpoints, settings: Settings) -> Endpoints:
    """As the handlers use them: their own NATS user (`as_component` gives another component's)."""
    return Endpoints.of_stack(stack, "handlers").with_s3(settings)


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeServer]:
    """The fake Kubernetes API over HTTP, for the tests that run jobs on Kubernetes."""
    async with fake_cluster() as server:
        yield server


@pytest.fixture
async def nc(stack: StackEndpoints) -> AsyncIterator[Client]:
    client = await nats.connect(stack.nats)
    yield client
    await client.close()


@pytest.fixture
async def js(nc: Client, settings: Settings) -> JetStreamContext:
    """JetStream with both streams recreated empty: no consumer or message leaks between tests."""
    context = nc.jetstream()
    for name in (STREAM, DLQ_STREAM):
        with contextlib.suppress(NotFoundError):
            await context.delete_stream(name)
    await ensure_streams(context, StreamSettings(duplicate_window_seconds=settings.duplicate_window_seconds))
    return context


@pytest.fixture
async def store(settings: Settings, stack: StackEndpoints) -> AsyncIterator[MongoStateStore]:
    mongo = MongoStateStore.connect(stack.mongo, settings.mongo_database)
    await mongo.ensure_indexes()
    yield mongo
    await mongo.client.drop_database(settings.mongo_database)
    await mongo.close()


@pytest.fixture
async def service(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[HandlerService]:
    svc = HandlerService(settings, endpoints)
    await svc.start()
    yield svc
    await svc.stop()


async def _caught_up(js: JetStreamContext) -> bool:
    for info in await js.consumers_info(STREAM):
        if info.config.durable_name is None:
            continue  # a reader's ordered consumer, not a handler
        if info.num_ack_pending:
            return False  # a handler holds an event: running, or waiting to retry it
        if info.num_pending and info.num_waiting:
            return False  # a live handler has events it has not fetched yet
    return True


async def quiet(js: JetStreamContext, *, timeout: float = 10.0) -> bool:
    """Wait until every live handler consumer acked what it was given and has nothing left to fetch.

    What handlers publish, they publish before they ack; once this holds, their reactions are in the stream.
    A consumer whose service stopped (nothing fetches) does not count. Returns False after `timeout` instead
    of failing: the caller's own assertion says what is missing."""
    deadline = asyncio.get_running_loop().time() + timeout
    in_a_row = 0
    while asyncio.get_running_loop().time() < deadline:
        # Twice in a row: between two fetches a live consumer shows neither a pull request nor a held event.
        in_a_row = in_a_row + 1 if await _caught_up(js) else 0
        if in_a_row == 2:
            return True
        await asyncio.sleep(0.02)
    return False


async def stream_events(js: JetStreamContext, subject: str, *, wait: bool = True) -> list[dict[str, Any]]:
    """Every stored message on `subject` (wildcards allowed), oldest first, decoded; with `wait`, once the
    handlers are quiet (see `quiet`)."""
    if wait:
        await quiet(js)
    sub = await js.subscribe(subject, ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))
    found: list[dict[str, Any]] = []
    try:
        info = await sub.consumer_info()
        if info.num_pending == 0 and info.delivered.consumer_seq == 0:
            return found
        # Each message says how many of the subject's stored messages follow it: read until none do.
        while True:
            msg = await sub.next_msg(timeout=10)
            found.append(json.loads(msg.data))
            if msg.metadata.num_pending == 0:
                break
    finally:
        await sub.unsubscribe()
    return found


async def finished(store: MongoStateStore, run_id: str) -> RunDocument | None:
    """The run's document once it reached a terminal state, else None (for `eventually`)."""
    doc = await store.get(RunDocument, run_id)
    return doc if doc is not None and doc.state in RunDocument.machine.terminal else None


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until `check` returns something truthy; fail with its last value otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")
