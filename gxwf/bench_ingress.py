"""`gxwf bench ingress`: what the EDC ingress costs per event callback (with `--dps`: per Data Plane Signaling
start message, until its 202), beside a bare FastAPI route.

Both servers run as their own processes on the same uvicorn, and the same 64 concurrent HTTP clients send the
same TransferProcessStarted callbacks to each, in the same run. The ingress answers only after JetStream acked
both events (the raw callback and the typed one); the bare route answers 200 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import nats
from fastapi import FastAPI, Response
from rich.console import Console
from rich.table import Table

from events.permissions import connect_options
from events.streams import ensure_streams
from gxwf.settings import Settings
from http_serving.server import free_port

WARMUP = 200
UVICORN = (sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log")


@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    failures: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def bare_app() -> FastAPI:
    """The baseline: the same framework and server, a route that only returns 200."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/edc/events")
    async def events() -> Response:
        return Response(status_code=200)

    @app.post("/dataflows/start")
    async def start() -> Response:
        return Response(status_code=202)

    return app


def _callback(transfer: str) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "at": int(time.time() * 1000),
        "type": "TransferProcessStarted",
        "payload": {
            "transferProcessId": transfer,
            "callbackAddresses": [],
            "assetId": "carla-minimal",
            "type": "PROVIDER",
            "contractId": "agreement-bench",
            "dataAddress": None,
            "protocol": "dataspace-protocol-http",
        },
    }


class _Connection:
    """A minimal keep-alive HTTP/1.1 client: a general-purpose client (httpx) spends more CPU per request
    than the servers measured here, and on a small machine would measure itself."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def _load(
    url: str,
    key: str,
    total: int,
    concurrency: int,
    path: str = "/edc/events",
    body_of: Callable[[str], dict[str, Any]] | None = None,
    expected: int = 200,
) -> tuple[float, list[float], int]:
    """`total` POSTs to `path` from `concurrency` connections; `body_of(transfer)` builds each body (a
    TransferProcessStarted callback unless given), and answers other than `expected` count as failures."""
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    make = body_of or _callback
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"x-api-key: {key}\r\ncontent-length: "
    ).encode()
    latencies: list[float] = []
    failures = 0
    remaining = total
    connections = [await _Connection.open(host, port) for _ in range(concurrency)]

    async def worker(connection: _Connection) -> None:
        nonlocal remaining, failures
        transfer = str(uuid.uuid4())
        while remaining > 0:
            remaining -= 1
            body = json.dumps(make(transfer)).encode()
            started = time.perf_counter()
            status = await connection.post(head, body)
            latencies.append(time.perf_counter() - started)
            if status != expected:
                failures += 1

    begun = time.perf_counter()
    try:
        await asyncio.gather(*(worker(c) for c in connections))
        return time.perf_counter() - begun, latencies, failures
    finally:
        for connection in connections:
            await connection.close()


async def _measure(name: str, url: str, key: str, total: int, concurrency: int, **request: Any) -> Figures:
    await _load(url, key, WARMUP, concurrency, **request)
    seconds, latencies, failures = await _load(url, key, total, concurrency, **request)
    return Figures(name, total, seconds, latencies, failures)


async def _ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server behind {url} exited with status {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                await client.get(f"{url}/healthz")
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:g}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_message(_: str) -> dict[str, Any]:
    """An EDC main start message for a new transfer each time (a second start for a process is refused)."""
    process = str(uuid.uuid4())
    return {
        "messageId": str(uuid.uuid4()),
        "participantId": "did:web:provider.example",
        "counterPartyId": "did:web:bench-consumer",
        "dataspaceContext": "dspace-2025-1",
        "processId": process,
        "agreementId": f"agreement-{process}",
        "datasetId": "shell-count",
        "profile": "HttpData-PULL",
        "callbackAddress": None,
        "labels": [],
        "metadata": {},
        "claims": {},
    }


DPS_START = {"path": "/dataflows/start", "body_of": _start_message, "expected": 202}
NO_DATAFLOWS = "the ingress has no /dataflows route (Data Plane Signaling): its start messages cannot be measured"


async def serves_dataflows(url: str, key: str) -> bool:
    """An ingress with Data Plane Signaling refuses an empty start as bad input; one without answers 404."""
    async with httpx.AsyncClient() as client:
        answer = await client.post(f"{url}/dataflows/start", json={}, headers={"x-api-key": key})
    return answer.status_code not in (404, 405)


async def run_benchmark(
    settings: Settings, total: int, concurrency: int, *, console: Console, dps: bool = False
) -> list[Figures]:
    """POST /edc/events (or with `dps`, POST /dataflows/start until 202) on the ingress and on a bare route."""
    from gxwf.stack_users import bench_stack

    key = secrets.token_urlsafe(24)
    database = f"bench_{uuid.uuid4().hex[:8]}"
    async with bench_stack(settings) as eps:
        nc = await nats.connect(**connect_options(eps.nats))
        await ensure_streams(nc.jetstream())
        env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
        env |= {"GXWF_NATS_URL": eps.nats_for("edc_ingress"), "GXWF_MONGO_URL": eps.mongo, "GXWF_S3_ENDPOINT": eps.s3}
        env |= {"GXWF_EDC_API_KEY": key, "GXWF_MONGO_DATABASE": database, "GXWF_LOG_LEVEL": "warning"}
        # The benchmark floods as one connector on purpose: measured is the ingress, not its rate limit.
        env["GXWF_EDC_RATE_LIMIT_PER_SECOND"] = "0"
        # Nothing answers there: no handler runs to call back; the start messages are measured until 202.
        env["GXWF_EDC_SIGNALING_URL"] = "http://127.0.0.1:9/api/signaling"
        ingress_port, bare_port = free_port(), free_port()
        ingress = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
            [sys.executable, "-m", "gxwf", "edc-ingress", "--port", str(ingress_port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        bare = subprocess.Popen(  # noqa: ASYNC220
            [*UVICORN, "gxwf.bench_ingress:bare_app", "--factory", "--host", "127.0.0.1", "--port", str(bare_port)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            ingress_url, bare_url = f"http://127.0.0.1:{ingress_port}", f"http://127.0.0.1:{bare_port}"
            await _ready(ingress_url, ingress)
            await _ready(bare_url, bare)  # its 404 for /healthz proves it answers
            before = (await nc.jetstream().stream_info("WF")).state.messages
            if dps and not await serves_dataflows(ingress_url, key):
                console.print(f"[yellow]{NO_DATAFLOWS}")
                return []
            request: dict[str, Any] = DPS_START if dps else {}
            answer = "202" if dps else "200"
            results = [
                await _measure(f"bare FastAPI route ({answer} at once)", bare_url, key, total, concurrency, **request),
                await _measure("edc ingress (acked by JetStream)", ingress_url, key, total, concurrency, **request),
            ]
            stored = (await nc.jetstream().stream_info("WF")).state.messages - before
        finally:
            _stop(ingress)
            _stop(bare)
            await nc.close()
    _report(console, results, total, concurrency, stored, dps)
    return results


def _report(
    console: Console, results: list[Figures], total: int, concurrency: int, stored: int, dps: bool = False
) -> None:
    bare, ingress = results
    route = "POST /dataflows/start (until 202)" if dps else "POST /edc/events"
    # The heading on a line of its own: a table's title wraps at the table's width.
    console.print(f"{route}: {total} requests from {concurrency} concurrent clients")
    table = Table()
    for column in ("server", "req/s", "p50 ms", "p99 ms", "non-202" if dps else "non-200"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for row in results:
        table.add_row(
            row.name,
            f"{row.per_second:,.0f}",
            f"{row.percentile(0.5):.1f}",
            f"{row.percentile(0.99):.1f}",
            str(row.failures),
        )
    console.print(table)
    console.print(
        f"ingress / bare: throughput {ingress.per_second / bare.per_second:.2f}x, "
        f"p50 latency {ingress.percentile(0.5) / bare.percentile(0.5):.1f}x, "
        f"p99 latency {ingress.percentile(0.99) / bare.percentile(0.99):.1f}x; "
        f"{stored} events stored by JetStream ({'per start message' if dps else 'raw + typed per callback'}, "
        "warm-up included)"
    )
