"""`gxwf bench dashboard`: the live tail under load, as operators' browsers see it.

Events are published at a steady rate into stream WF while N SSE clients tail the dashboard (its own process,
started like `gxwf dashboard`). Every client must receive every event; the figures are the publish-to-client
latency of every event at every client, beside a raw nats-py ordered consumer reading the same events in the
same run (the baseline: what JetStream alone costs), and the dashboard process's CPU and RSS.

Three processes: the dashboard; the SSE clients (`python -m gxwf.bench_dashboard clients ...`), so that reading
40,000 events a second does not slow the publisher down; and this one, publishing and reading the baseline.
Latency compares perf_counter readings, the machine's monotonic clock, which every process shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import psutil
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from rich.console import Console
from rich.table import Table

from events.permissions import connect_options
from events.streams import ensure_streams
from events.subjects import STREAM
from gxwf.settings import Settings
from http_serving.server import free_port

SUBJECT = "wf.bench.tick"  # in stream WF, and no handler subscribes to it
# One SSE event of the tail: its id (the stream sequence) and, in its payload, when the bench published it.
_EVENT = re.compile(rb'^id: (\d+)\r?\nevent: event\r?\ndata: [^\r\n]*?"sent":([0-9.]+)', re.MULTILINE)
_SENT = re.compile(rb'"sent": ?([0-9.]+)')


@dataclass
class Published:
    count: int = 0
    seconds: float = 0.0


@dataclass
class Reader:
    name: str
    latencies: list[float] = field(default_factory=list)
    received: set[int] = field(default_factory=set)
    doubled: int = 0

    def take(self, sequence: int, now: float, sent: float) -> None:
        if sequence in self.received:
            self.doubled += 1
            return
        self.received.add(sequence)
        self.latencies.append(now - sent)


@dataclass(frozen=True)
class ClientFigures:
    received: int
    doubled: int


@dataclass
class Report:
    rate: int
    seconds: float
    clients: list[ClientFigures]
    latency_ms: dict[str, float]  # p50, p99, max over every event at every client
    baseline: Reader
    published: Published
    cpu_percent: list[float]
    rss_bytes: list[int]
    client_cpu_percent: list[float] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(c.received == self.published.count and c.doubled == 0 for c in self.clients)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def _body(n: int, sent: float) -> bytes:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:gaiax-workflows:bench",
        "type": SUBJECT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "datacontenttype": "application/json",
        "correlationid": f"bench-run-{n % 50}",
        # perf_counter is the machine's monotonic clock: the clients compare it with theirs.
        "data": {"run_id": f"bench-run-{n % 50}", "consumer_id": f"did:web:bench-{n % 20}", "n": n, "sent": sent},
    }
    return json.dumps(event).encode()


async def _publish(js: JetStreamContext, rate: int, seconds: float, published: Published) -> None:
    """`rate` events per second in ticks of 10 ms, each tick's publishes in flight together."""
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    total = int(rate * seconds)
    begun = time.perf_counter()
    n = 0

    async def one(index: int) -> None:
        body = _body(index, time.perf_counter())
        await js.publish(SUBJECT, body, stream=STREAM, headers={"Nats-Msg-Id": f"bench-{uuid.uuid4()}"})

    while n < total:
        batch = range(n, min(total, n + per_tick))
        n += len(batch)
        await asyncio.gather(*(one(i) for i in batch))
        next_tick = begun + (n / per_tick) * tick
        await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
    published.count = total
    published.seconds = time.perf_counter() - begun


async def _sse_client(host: str, port: int, token: str, reader: Reader, ready: asyncio.Event) -> None:
    """A raw HTTP/1.1 SSE reader: a browser-like client that spends little CPU of its own on parsing."""
    stream_reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        # From now (`since=0s`): a tail opened without a start would begin with the stream's newest events, and
        # earlier runs' ticks would count as received.
        f"GET /api/events/stream?since=0s HTTP/1.1\r\nhost: {host}:{port}\r\naccept: text/event-stream\r\n"
        f"authorization: Bearer {token}\r\n\r\n".encode()
    )
    try:
        head = await stream_reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"tail refused: {head[:200]!r}")
        ready.set()
        pending = b""
        while True:
            chunk = await stream_reader.read(1 << 16)
            if not chunk:
                return
            now = time.perf_counter()
            # Only whole events (they end with a blank line): one split across two reads is read once complete.
            pending += chunk
            end = pending.rfind(b"\n\r\n")
            cut = end + 3 if end >= 0 else 0
            for match in _EVENT.finditer(pending, 0, cut):
                reader.take(int(match.group(1)), now, float(match.group(2)))
            pending = pending[cut:]
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def clients_main(host: str, port: int, count: int) -> None:
    """The client process: N tails; "ready" once all are open, then, given how many events to expect and how long
    to wait, one JSON line with what each got and the latencies."""
    token = os.environ["GXWF_BENCH_TOKEN"]
    readers = [Reader(f"client {i + 1}") for i in range(count)]
    ready = [asyncio.Event() for _ in readers]
    tasks = [asyncio.create_task(_sse_client(host, port, token, r, e)) for r, e in zip(readers, ready, strict=True)]
    async with asyncio.timeout(30):
        await asyncio.gather(*(e.wait() for e in ready))
    print("ready", flush=True)
    expected, settle = (await asyncio.to_thread(sys.stdin.readline)).split()
    deadline = time.monotonic() + float(settle)
    while time.monotonic() < deadline and not all(len(r.received) >= int(expected) for r in readers):
        await asyncio.sleep(0.1)
    for task in tasks:
        task.cancel()
    latencies = [value for r in readers for value in r.latencies]
    figures = {
        "clients": [{"received": len(r.received), "doubled": r.doubled} for r in readers],
        "latency_ms": {"p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99), "max": pct(latencies, 1.0)},
    }
    print(json.dumps(figures), flush=True)


async def _baseline(js: JetStreamContext, reader: Reader, start: int) -> Any:
    async def on_message(msg: Any) -> None:
        found = _SENT.search(msg.data)
        if found is not None:
            reader.take(int(msg.metadata.sequence.stream), time.perf_counter(), float(found.group(1)))

    config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
    return await js.subscribe(SUBJECT, stream=STREAM, ordered_consumer=True, config=config, cb=on_message)


async def _ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with status {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the dashboard at {url} did not answer within {timeout:g}s")


async def _sample(pid: int, cpu: list[float], rss: list[int], stop: asyncio.Event) -> None:
    process = psutil.Process(pid)
    process.cpu_percent(None)
    while not stop.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        with contextlib.suppress(psutil.Error):
            cpu.append(process.cpu_percent(None))
            rss.append(process.memory_info().rss)


async def run_benchmark(
    settings: Settings, rate: int, seconds: float, clients: int, *, console: Console, settle: float = 30.0
) -> Report:
    from gxwf.stack_users import bench_stack

    token, admin = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    async with bench_stack(settings) as eps:
        nc = await nats.connect(**connect_options(eps.nats))
        js = nc.jetstream()
        await ensure_streams(js)
        port = free_port()
        with tempfile.TemporaryDirectory(prefix="gxwf-bench-dashboard-") as state:
            env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
            env |= {"GXWF_NATS_URL": eps.nats_for("dashboard"), "GXWF_MONGO_URL": eps.mongo, "GXWF_S3_ENDPOINT": eps.s3}
            if eps.s3_access_key and eps.s3_secret_key:
                env |= {"GXWF_S3_ACCESS_KEY": eps.s3_access_key, "GXWF_S3_SECRET_KEY": eps.s3_secret_key}
            env |= {"GXWF_DASHBOARD_TOKEN": token, "GXWF_DASHBOARD_ADMIN_TOKEN": admin, "GXWF_LOG_LEVEL": "warning"}
            env |= {"GXWF_STATE_DIR": state, "GXWF_MONGO_DATABASE": f"bench_{uuid.uuid4().hex[:8]}"}
            proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
                [sys.executable, "-m", "gxwf", "dashboard", "--port", str(port)], env=env, stdout=subprocess.DEVNULL
            )
            readers: asyncio.subprocess.Process | None = None
            try:
                url = f"http://127.0.0.1:{port}"
                await _ready(url, proc)
                readers = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gxwf.bench_dashboard",
                    "clients",
                    "127.0.0.1",
                    str(port),
                    str(clients),
                    env={**env, "GXWF_BENCH_TOKEN": token},
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
                assert readers.stdin is not None and readers.stdout is not None
                async with asyncio.timeout(60):
                    line = await readers.stdout.readline()
                if line.strip() != b"ready":
                    raise RuntimeError(f"the SSE clients did not start: {line[:200]!r}")
                published = Published()
                start = int((await js.stream_info(STREAM)).state.last_seq) + 1
                baseline = Reader("raw nats-py ordered consumer")
                raw = await _baseline(js, baseline, start)
                cpu: list[float] = []
                rss: list[int] = []
                stop = asyncio.Event()
                sampler = asyncio.create_task(_sample(proc.pid, cpu, rss, stop))
                client_cpu: list[float] = []
                client_sampler = asyncio.create_task(_sample(readers.pid, client_cpu, [], stop))
                await _publish(js, rate, seconds, published)
                readers.stdin.write(f"{published.count} {settle}\n".encode())
                await readers.stdin.drain()
                async with asyncio.timeout(settle + 30):
                    figures = json.loads(await readers.stdout.readline())
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and len(baseline.received) < published.count:
                    await asyncio.sleep(0.1)
                stop.set()
                await sampler
                await client_sampler
                await raw.unsubscribe()
            finally:
                if readers is not None and readers.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        readers.kill()
                    await readers.wait()
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.wait, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    await asyncio.to_thread(proc.wait)
                await nc.close()
    report = Report(
        rate,
        seconds,
        [ClientFigures(int(c["received"]), int(c["doubled"])) for c in figures["clients"]],
        {k: float(v) for k, v in figures["latency_ms"].items()},
        baseline,
        published,
        cpu,
        rss,
        client_cpu,
    )
    show(report, console)
    return report


def show(report: Report, console: Console) -> None:
    published = report.published
    delivered = [c.received for c in report.clients]
    latency = report.latency_ms
    table = Table(
        title=f"dashboard live tail: {report.rate} events/s for {report.seconds:g} s, {len(report.clients)} clients"
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("events published", f"{published.count} ({published.count / published.seconds:.0f}/s achieved)")
    table.add_row(
        "delivered per client (min / max)",
        f"{min(delivered, default=0)} / {max(delivered, default=0)} of {published.count}"
        + ("  all" if report.complete else "  MISSING OR DOUBLED"),
    )
    table.add_row("doubled (all clients)", str(sum(c.doubled for c in report.clients)))
    table.add_row(
        "publish -> browser SSE p50 / p99 / max (ms)",
        f"{latency['p50']:.1f} / {latency['p99']:.1f} / {latency['max']:.1f}",
    )
    base = report.baseline.latencies
    table.add_row("publish -> raw nats-py p50 / p99 (ms)", f"{pct(base, 0.5):.1f} / {pct(base, 0.99):.1f}")
    if base:
        table.add_row("dashboard / raw: p99 latency", f"{latency['p99'] / max(pct(base, 0.99), 1e-3):.1f}x")
    cpu = report.cpu_percent
    table.add_row(
        "dashboard CPU % (mean / max; 100 = one core)", f"{sum(cpu) / len(cpu):.0f} / {max(cpu):.0f}" if cpu else "-"
    )
    table.add_row("dashboard RSS MB (max)", f"{max(report.rss_bytes) / 2**20:.0f}" if report.rss_bytes else "-")
    # When the clients' process is near a full core, the latency tail is theirs, not the dashboard's.
    client = report.client_cpu_percent
    table.add_row(
        "SSE clients' process CPU % (mean / max)",
        f"{sum(client) / len(client):.0f} / {max(client):.0f}" if client else "-",
    )
    console.print(table)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "clients":
        sys.exit("usage: python -m gxwf.bench_dashboard clients HOST PORT COUNT (started by gxwf bench dashboard)")
    asyncio.run(clients_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
