"""`gxwf bench backbone --nats-nodes N --replicas 1,2,4`: the bus path of a handler group on one NATS server and
on an N-node JetStream cluster (streams at min(3, N) replicas), with 1, 2, 4 ... replicas sharing its durable
consumer, in one run.

Each replica is a process of its own (`gxwf.bench_backbone_worker`), as handler replicas are: on a machine with
few cores, tasks in one process would measure one event loop, not the replicas. A replica's handler is the bus
path alone (envelope parsed, durable pull subscriber, ack) and reports each event on a plain NATS subject: the
store is left out, so the figures are the backbone's and not the embedded MongoDB-wire server's (`gxwf bench
backbone` without these options measures the pipeline with the store).
Throughput: a burst of `events` published at once, until every one was handled; latency: publish-to-handled of
events sent one at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from rich.console import Console
from rich.table import Table

from devstack import EmbeddedStack
from events.envelope import new_event
from events.permissions import connect_options
from events.streams import StreamSettings, ensure_streams, replicas_for
from events.wire import publish_to_jetstream
from gxwf.bench_backbone_worker import Tick
from gxwf.errors import UserError

LATENCY_SAMPLES = 200
WARM_UP = 20
MAX_REPLICAS = 16
_CHUNK = 256


@dataclass
class ScalingRow:
    nats_nodes: int
    stream_replicas: int
    replicas: int
    events_per_second: float
    p50_ms: float
    p99_ms: float
    # Events of the burst each replica handled: how the durable consumer shared the work.
    per_replica: list[int]
    # Events handled more than once (redelivered after an ack was lost); 0 expected.
    duplicates: int


def parse_replicas(text: str) -> list[int]:
    """`1,2,4` -> [1, 2, 4]; a one-line UserError for anything else."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= count <= MAX_REPLICAS for count in counts):
        raise UserError(f"--replicas {text}: comma-separated replica counts, each 1 to {MAX_REPLICAS} (e.g. 1,2,4)")
    return sorted(set(counts))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


@contextlib.asynccontextmanager
async def _nats_only(nodes: int) -> AsyncIterator[str]:
    """Embedded NATS servers alone, in a temporary directory: the store and S3 are not used here, so they are
    named (never contacted) instead of started."""
    stack = EmbeddedStack(
        None, nats_nodes=nodes, mongo_url="mongodb://unused.invalid", s3_endpoint="http://unused.invalid"
    )
    async with stack as endpoints:
        yield endpoints.nats


class _Reports:
    """What the replicas report: per event, which replica handled it and how long after its publish."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.by_replica: dict[int, int] = {}
        self.seen: set[str] = set()
        self.duplicates = 0
        self._target = 0
        self._reached = asyncio.Event()

    def expect(self, target: int) -> None:
        self.latencies.clear()
        self.by_replica.clear()
        self._target = target
        self._reached.clear()
        if len(self.seen) >= target:
            self._reached.set()

    async def on_report(self, msg: Msg) -> None:
        index, latency, doc_id = msg.data.decode().split(" ")
        if doc_id in self.seen:
            self.duplicates += 1
            return
        self.seen.add(doc_id)
        self.latencies.append(float(latency))
        self.by_replica[int(index)] = self.by_replica.get(int(index), 0) + 1
        if len(self.seen) >= self._target:
            self._reached.set()

    async def reached(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._reached.wait(), timeout)
        except TimeoutError:
            raise RuntimeError(
                f"the replicas handled {len(self.seen)} of {self._target} events within {timeout:g}s"
            ) from None


async def _start_replicas(nats_url: str, argv: Sequence[str], count: int) -> list[asyncio.subprocess.Process]:
    # The URL goes in the environment, not the command line: it carries a password.
    env = {**os.environ, "GXWF_NATS_URL": nats_url}
    module = "gxwf.bench_backbone_worker"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *argv,
            str(index),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            line = await asyncio.wait_for(process.stdout.readline(), 120)
            if line.strip() != b"ready":
                raise RuntimeError(f"a replica did not start (exit status {await process.wait()})")
    except BaseException:
        await _stop_replicas(processes)
        raise
    return processes


async def _stop_replicas(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.stdin is not None:
            process.stdin.close()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _measure(
    nc: Client, js: JetStreamContext, nats_url: str, nodes: int, stream_replicas: int, replicas: int, n: int
) -> ScalingRow:
    prefix = uuid.uuid4().hex[:8]
    subject, durable, report = f"wf.bench.scale.{prefix}", f"bench-scale-{prefix}", f"bench.report.{prefix}"
    reports = _Reports()
    subscription = await nc.subscribe(report, cb=reports.on_report)
    processes = await _start_replicas(nats_url, (subject, durable, report), replicas)
    sent = 0

    async def publish(count: int) -> None:
        nonlocal sent
        first, sent = sent, sent + count
        for chunk in range(first, sent, _CHUNK):
            ticks = (Tick(doc_id=f"{prefix}-{i}", sent=time.time()) for i in range(chunk, min(chunk + _CHUNK, sent)))
            await asyncio.gather(*(publish_to_jetstream(js, new_event(subject, tick)) for tick in ticks))

    patience = 120.0 + n / 20
    try:
        reports.expect(WARM_UP)
        await publish(WARM_UP)
        await reports.reached(patience)
        reports.expect(WARM_UP + n)
        began = time.perf_counter()
        await publish(n)
        await reports.reached(patience)
        seconds = time.perf_counter() - began
        per_replica = [reports.by_replica.get(index, 0) for index in range(replicas)]
        samples = min(LATENCY_SAMPLES, n)
        latencies: list[float] = []
        for _ in range(samples):
            reports.expect(sent + 1)
            await publish(1)
            await reports.reached(patience)
            latencies.extend(reports.latencies)
    finally:
        await _stop_replicas(processes)
        await subscription.unsubscribe()
    return ScalingRow(
        nats_nodes=nodes,
        stream_replicas=stream_replicas,
        replicas=replicas,
        events_per_second=n / seconds,
        p50_ms=_percentile(latencies, 0.5),
        p99_ms=_percentile(latencies, 0.99),
        per_replica=per_replica,
        duplicates=reports.duplicates,
    )


async def run_scaling(
    nats_nodes: int, replicas: list[int], n: int, *, console: Console, as_json: bool
) -> list[ScalingRow]:
    rows: list[ScalingRow] = []
    progress = Console(stderr=True)
    topologies = [1] if nats_nodes == 1 else [1, nats_nodes]
    for nodes in topologies:
        async with _nats_only(nodes) as nats_url:
            stream_replicas = replicas_for(nats_url)
            nc = await nats.connect(**connect_options(nats_url))
            try:
                js = nc.jetstream()
                await ensure_streams(js, StreamSettings(replicas=stream_replicas))
                for count in replicas:
                    progress.print(f"measuring: {nodes} NATS node(s), {count} replica(s) ...", style="dim")
                    rows.append(await _measure(nc, js, nats_url, nodes, stream_replicas, count, n))
            finally:
                await nc.close()
    _print(rows, replicas[0], n, console)
    if as_json:
        # The last line, for scripts: every figure of the table.
        print(
            json.dumps(
                {"events": n, "latency_samples": min(LATENCY_SAMPLES, n), "rows": [_figures(row, rows) for row in rows]}
            )
        )
    return rows


def _baseline(row: ScalingRow, rows: list[ScalingRow]) -> ScalingRow:
    """The row of the same servers with the fewest replicas."""
    return min((other for other in rows if other.nats_nodes == row.nats_nodes), key=lambda other: other.replicas)


def _figures(row: ScalingRow, rows: list[ScalingRow]) -> dict[str, Any]:
    base = _baseline(row, rows)
    return {**asdict(row), "throughput_vs_fewest_replicas": row.events_per_second / base.events_per_second}


def _print(rows: list[ScalingRow], fewest: int, n: int, console: Console) -> None:
    table = Table(
        title=f"backbone on NATS: {n} events burst, {min(LATENCY_SAMPLES, n)} paced for latency; "
        "replicas share one durable consumer"
    )
    for column in (
        "NATS",
        "replicas",
        "events/s",
        "p50 ms",
        "p99 ms",
        f"vs {fewest} replica{'s' if fewest > 1 else ''}",
        "events per replica",
    ):
        table.add_column(column, justify="left" if column == "NATS" else "right")
    for row in rows:
        where = "1 server" if row.nats_nodes == 1 else f"{row.nats_nodes} nodes, R{row.stream_replicas}"
        table.add_row(
            where,
            str(row.replicas),
            f"{row.events_per_second:,.0f}",
            f"{row.p50_ms:.2f}",
            f"{row.p99_ms:.2f}",
            f"{row.events_per_second / _baseline(row, rows).events_per_second:.2f}x",
            " / ".join(str(count) for count in row.per_replica),
        )
    console.print(table)
    single = {row.replicas: row for row in rows if row.nats_nodes == 1}
    for row in rows:
        if row.nats_nodes > 1 and row.replicas in single:
            alone = single[row.replicas]
            console.print(
                f"{row.replicas} replica(s): the {row.nats_nodes}-node cluster gives "
                f"{row.events_per_second / alone.events_per_second:.2f}x the single server's throughput, "
                f"p99 {row.p99_ms / alone.p99_ms:.2f}x"
            )
    if any(row.duplicates for row in rows):
        console.print(f"events handled twice: {sum(row.duplicates for row in rows)}", style="yellow")
