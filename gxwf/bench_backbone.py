"""`gxwf bench backbone`: what the envelope, subscriber and store transition cost on top of raw clients.

Three rows on the same servers in the same run:
  raw nats-py      publish -> pull 256 -> ack                         (the bus alone)
  raw pipeline     publish -> pull 64 -> update_one CAS + $push -> ack (bus + store, hand-written)
  gxwf pipeline    Bus.publish(envelope) -> durable subscriber -> StateStore.transition -> ack
Throughput is a burst of N events; latency is publish-to-handled of events sent one at a time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from adapters.mongo_store import MongoStateStore
from events.bus import Bus
from events.delivery import DeliveryPolicy
from events.envelope import Envelope, new_event
from events.permissions import connect_options
from events.streams import ensure_streams
from gxwf.bench_backbone_worker import Tick
from gxwf.settings import Settings
from schemas.documents import utcnow
from schemas.run import RunDocument, RunState

LATENCY_SAMPLES = 200


@dataclass
class Row:
    name: str
    events_per_second: float
    p50_ms: float
    p99_ms: float


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def _measure(
    n: int, publish: Callable[[int], Awaitable[None]], handled: list[float], *, paced: bool
) -> tuple[float, list[float]]:
    """Publish n events (burst or one at a time) and wait for all to be handled; returns (seconds, latencies)."""
    handled.clear()
    start = time.perf_counter()
    if paced:
        for i in range(n):
            await publish(i)
            while len(handled) <= i:
                await asyncio.sleep(0.0005)
    else:
        for chunk in range(0, n, 256):
            await asyncio.gather(*(publish(i) for i in range(chunk, min(chunk + 256, n))))
    while len(handled) < n:
        await asyncio.sleep(0.001)
    return time.perf_counter() - start, list(handled)


async def _pull_forever(psub: Any, batch: int, handle: Callable[[Any], Awaitable[None]]) -> None:
    """The hand-written consumer of the raw baselines: fetch a batch, handle its messages concurrently."""
    while True:
        try:
            msgs = await psub.fetch(batch, timeout=0.5)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        await asyncio.gather(*(handle(m) for m in msgs))


async def _bench_raw_nats(js: JetStreamContext, n: int) -> Row:
    subject, durable = f"wf.bench.raw.{uuid.uuid4().hex[:6]}", f"bench-raw-{uuid.uuid4().hex[:6]}"
    psub = await js.pull_subscribe(subject, durable=durable, config=ConsumerConfig(max_ack_pending=-1))
    handled: list[float] = []

    async def ack(msg: Any) -> None:
        sent = float(msg.data)
        await msg.ack()
        handled.append(time.time() - sent)

    async def publish(_: int) -> None:
        await js.publish(subject, str(time.time()).encode())

    task = asyncio.create_task(_pull_forever(psub, 256, ack))
    try:
        seconds, _ = await _measure(n, publish, handled, paced=False)
        _, latencies = await _measure(LATENCY_SAMPLES, publish, handled, paced=True)
    finally:
        task.cancel()
        await psub.unsubscribe()
    return Row(
        "raw nats-py (publish, pull, ack)",
        n / seconds,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
    )


async def _seed(coll: Any, prefix: str, n: int) -> None:
    now = utcnow()
    docs = [
        {
            "_id": f"{prefix}-{i}",
            "state": "pending",
            "consumer_id": "bench",
            "asset_id": "bench",
            "history": [],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    for chunk in range(0, n, 1000):
        await coll.insert_many(docs[chunk : chunk + 1000])


async def _bench_raw_pipeline(js: JetStreamContext, mongo_url: str, database: str, n: int) -> Row:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    coll = client[database]["raw_runs"]
    prefix = uuid.uuid4().hex[:6]
    await _seed(coll, prefix, n + LATENCY_SAMPLES)
    subject, durable = f"wf.bench.rawpipe.{prefix}", f"bench-rawpipe-{prefix}"
    psub = await js.pull_subscribe(subject, durable=durable, config=ConsumerConfig(max_ack_pending=-1))
    handled: list[float] = []

    async def apply(msg: Any) -> None:
        doc_id, sent = msg.data.decode().split("|")
        await coll.update_one(
            {"_id": doc_id, "state": "pending"},
            {
                "$set": {"state": "running"},
                "$push": {"history": {"to": "running", "at": utcnow(), "event_id": doc_id}},
            },
        )
        await msg.ack()
        handled.append(time.time() - float(sent))

    offset = 0

    async def publish(i: int) -> None:
        await js.publish(subject, f"{prefix}-{offset + i}|{time.time()}".encode())

    task = asyncio.create_task(_pull_forever(psub, 64, apply))
    try:
        seconds, _ = await _measure(n, publish, handled, paced=False)
        offset = n
        _, latencies = await _measure(LATENCY_SAMPLES, publish, handled, paced=True)
    finally:
        task.cancel()
        await psub.unsubscribe()
        await client.close()
    return Row(
        "raw pipeline (pull, CAS update, ack)",
        n / seconds,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
    )


async def _bench_gxwf(nats_url: str, mongo_url: str, database: str, n: int) -> Row:
    store = MongoStateStore.connect(mongo_url, database)
    prefix = uuid.uuid4().hex[:6]
    await _seed(store.db[RunDocument.collection], prefix, n + LATENCY_SAMPLES)
    handled: list[float] = []

    async def handler(event: Envelope[Any]) -> None:
        tick: Tick = event.data
        await store.transition(RunDocument, tick.doc_id, RunState.RUNNING, event_id=event.id)
        handled.append(time.time() - tick.sent)

    bus = Bus(nats_url, DeliveryPolicy(concurrency=64, ack_wait=30.0))
    subject = f"wf.bench.gxwf.{prefix}"
    bus.subscribe(subject=subject, durable=f"bench-gxwf-{prefix}", payload=Tick, handler=handler)
    await bus.broker.start()
    offset = 0

    async def publish(i: int) -> None:
        await bus.publish(new_event(subject, Tick(doc_id=f"{prefix}-{offset + i}", sent=time.time())))

    try:
        seconds, _ = await _measure(n, publish, handled, paced=False)
        offset = n
        _, latencies = await _measure(LATENCY_SAMPLES, publish, handled, paced=True)
    finally:
        await bus.broker.stop()
        await store.close()
    return Row(
        "gxwf pipeline (envelope, subscriber, transition)",
        n / seconds,
        _percentile(latencies, 0.5),
        _percentile(latencies, 0.99),
    )


async def run_benchmark(settings: Settings, n: int, *, console: Console) -> list[Row]:
    from gxwf.stack_users import bench_stack

    async with bench_stack(settings) as eps:
        nc = await nats.connect(**connect_options(eps.nats))
        js = nc.jetstream()
        await ensure_streams(js)
        database = f"bench_{uuid.uuid4().hex[:8]}"
        try:
            rows = [
                await _bench_raw_nats(js, n),
                await _bench_raw_pipeline(js, eps.mongo, database, n),
                await _bench_gxwf(eps.nats, eps.mongo, database, n),
            ]
        finally:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(eps.mongo)
            await client.drop_database(database)
            await client.close()
            await nc.close()
    baseline = rows[1]
    table = Table(title=f"backbone: {n} events burst, {LATENCY_SAMPLES} paced for latency")
    for column in ("path", "events/s", "p50 ms", "p99 ms", "throughput vs raw pipeline"):
        table.add_column(column, justify="right" if column != "path" else "left")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.events_per_second:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            f"{row.events_per_second / baseline.events_per_second:.2f}x",
        )
    console.print(table)
    gx = rows[2]
    console.print(
        f"gxwf pipeline / raw pipeline: throughput {gx.events_per_second / baseline.events_per_second:.2f}x, "
        f"p50 latency {gx.p50_ms / baseline.p50_ms:.2f}x, p99 latency {gx.p99_ms / baseline.p99_ms:.2f}x"
    )
    return rows
