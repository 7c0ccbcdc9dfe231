"""`gxwf bench data`: moving data through the WorkflowApi beside aioboto3 straight to the same S3, in the same run.

The API runs as its own process (`gxwf workflow-api`), sampled with psutil for its peak RSS over its warm
baseline. One file is uploaded and downloaded both ways; then GET /v1/runs/{id} is measured in requests/s beside
/healthz of the same process (no store read), from 32 keep-alive connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aioboto3
import aiohttp
import httpx
import psutil
from botocore.config import Config
from rich.console import Console
from rich.table import Table

from adapters.mongo_store import MongoStateStore
from gxwf.bench_ingress import _Connection, _ready, _stop
from gxwf.endpoints import Endpoints
from gxwf.errors import UserError
from gxwf.settings import Settings
from http_serving.server import free_port
from schemas.names import input_prefix
from schemas.provisioning import AccessGrantDocument, AccessState, ResultDocument, ResultState
from schemas.run import RunDocument, RunState

MIB = 1024 * 1024
_UNITS = {"": 1, "B": 1, "KIB": 1024, "MIB": MIB, "GIB": 1024 * MIB, "KB": 1000, "MB": 10**6, "GB": 10**9}
_CHUNK = 4 * MIB


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise UserError(f"--size {text!r}: give bytes or a size such as 64MiB or 1GiB")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size < 1024:
        raise UserError(f"--size {text}: at least 1024 bytes")
    return size


def _make_file(path: Path, size: int) -> None:
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        left = size
        while left > 0:
            handle.write(block[: min(left, MIB)])
            left -= MIB


class _RssSampler:
    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._task: asyncio.Task[None] | None = None

    def current(self) -> int:
        return int(self.process.memory_info().rss)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.current())
            await asyncio.sleep(0.02)

    def start(self) -> None:
        self.peak = self.current()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return self.peak


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


async def _rps(url: str, path: str, token: str, total: int, concurrency: int = 32) -> float:
    parts = httpx.URL(url)
    host, port = parts.host, parts.port or 80
    head = (f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {token}\r\ncontent-length: ").encode()
    connections = [await _Connection.open(host, port) for _ in range(concurrency)]
    remaining = concurrency * 10
    failures = 0

    async def worker(connection: _Connection) -> None:
        nonlocal remaining, failures
        while remaining > 0:
            remaining -= 1
            if await connection.post(head, b"") != 200:
                failures += 1

    try:
        await asyncio.gather(*(worker(c) for c in connections))  # warm-up pass
        remaining = total
        begun = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in connections))
        seconds = time.perf_counter() - begun
    finally:
        for connection in connections:
            await connection.close()
    if failures:
        raise RuntimeError(f"{failures} of the GET {path} requests did not answer 200")
    return total / seconds


async def run_benchmark(settings: Settings, size: int, requests: int, *, console: Console) -> dict[str, float]:
    from gxwf.stack_users import bench_stack

    database = f"bench_{uuid.uuid4().hex[:8]}"
    token = secrets.token_urlsafe(32)
    consumer = "did:web:bench.example"
    with tempfile.TemporaryDirectory(prefix="gxwf-bench-data-") as scratch:
        root = Path(scratch)
        source = root / "source.bin"
        await asyncio.to_thread(_make_file, source, size)
        async with bench_stack(settings) as eps:
            servers = Endpoints.of_stack(eps, "workflow_api").with_s3(settings)
            store = MongoStateStore.connect(eps.mongo, database)
            await store.create(
                AccessGrantDocument(
                    id="bench-transfer",
                    state=AccessState.ACTIVE,
                    transfer_process_id="bench-transfer",
                    consumer_id=consumer,
                    token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                    workflow_api_url="http://127.0.0.1",
                ),
                event_id="bench",
            )
            await store.create(
                RunDocument(id="bench-run", state=RunState.QUEUED, consumer_id=consumer, asset_id="bench"),
                event_id="bench",
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
            env |= {"GXWF_NATS_URL": servers.nats, "GXWF_MONGO_URL": eps.mongo, "GXWF_S3_ENDPOINT": eps.s3}
            env |= {"GXWF_MONGO_DATABASE": database, "GXWF_LOG_LEVEL": "warning", "GXWF_S3_BUCKET": settings.s3_bucket}
            if servers.s3_access_key and servers.s3_secret_key:
                env |= {"GXWF_S3_ACCESS_KEY": servers.s3_access_key, "GXWF_S3_SECRET_KEY": servers.s3_secret_key}
            env |= {"GXWF_WORKFLOW_API_UPLOAD_LIMIT_BYTES": str(max(size * 2, 1024 * MIB))}
            port = free_port()
            api = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
                [sys.executable, "-m", "gxwf", "workflow-api", "--port", str(port), "--state-dir", str(root / "state")],
                env=env,
                stdout=subprocess.DEVNULL,
            )
            url = f"http://127.0.0.1:{port}"
            figures: dict[str, float] = {}
            try:
                await _ready(url, api)
                sampler = _RssSampler(api.pid)
                figures = await _measure(url, token, source, size, sampler, settings, servers, store, requests)
            finally:
                _stop(api)
                await store.client.drop_database(database)
                await store.close()
    _report(console, figures, size, requests)
    return figures


async def _measure(
    url: str,
    token: str,
    source: Path,
    size: int,
    sampler: _RssSampler,
    settings: Settings,
    servers: Endpoints,
    store: MongoStateStore,
    requests: int,
) -> dict[str, float]:
    s3_url = servers.s3
    session = aioboto3.Session(
        aws_access_key_id=servers.s3_access_key,
        aws_secret_access_key=servers.s3_secret_key,
        region_name=settings.s3_region,
    )
    config = Config(s3={"addressing_style": "path"})
    figures: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        session.client("s3", endpoint_url=s3_url, config=config) as s3,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=httpx.Timeout(600.0)) as http,
    ):
        with contextlib.suppress(Exception):
            await s3.create_bucket(Bucket=settings.s3_bucket)
        # Warm both paths (connections, imports) before the baseline RSS is taken.
        warm = await http.post("/v1/inputs", params={"name": "warm"}, content=b"x" * 4096)
        warm.raise_for_status()
        baseline = sampler.current()
        key = f"bench/direct-{uuid.uuid4().hex[:8]}"

        begun = time.perf_counter()
        with source.open("rb") as handle:
            await s3.upload_fileobj(handle, settings.s3_bucket, key)
        figures["direct_upload_s"] = time.perf_counter() - begun

        sampler.start()
        begun = time.perf_counter()
        response = await http.post(
            "/v1/inputs",
            params={"name": "bench", "filename": "bench.bin"},
            content=_file_chunks(source),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        figures["api_upload_s"] = time.perf_counter() - begun
        response.raise_for_status()
        uploaded = response.json()
        input_key = input_prefix("did:web:bench.example", uploaded["id"]) + "bench.bin"

        begun = time.perf_counter()
        answer = await s3.get_object(Bucket=settings.s3_bucket, Key=key)
        received = 0
        body = answer["Body"]
        while chunk := await body.read(_CHUNK):
            received += len(chunk)
        body.close()
        figures["direct_download_s"] = time.perf_counter() - begun

        await store.create(
            ResultDocument(
                id="bench-run",
                state=ResultState.COLLECTING,
                consumer_id="did:web:bench.example",
            ),
            event_id="bench",
        )
        await store.transition(
            ResultDocument,
            "bench-run",
            ResultState.PUBLISHED,
            event_id="bench-published",
            fields={"files": [{"name": "bench.bin", "key": input_key, "size": size, "sha256": uploaded["sha256"]}]},
        )
        await store.transition(RunDocument, "bench-run", RunState.FAILED, event_id="bench-end")
        # Read with aiohttp, the HTTP client aioboto3 uses for the direct path: both sides then pay the same
        # client cost, and the difference is the API's (httpx's pure-Python parser costs more than the API here).
        begun = time.perf_counter()
        received = 0
        async with (
            aiohttp.ClientSession(headers=headers) as session,
            session.get(f"{url}/v1/runs/bench-run/results/files/bench.bin") as streamed,
        ):
            streamed.raise_for_status()
            async for chunk in streamed.content.iter_chunked(_CHUNK):
                received += len(chunk)
        figures["api_download_s"] = time.perf_counter() - begun
        if received != size:
            raise RuntimeError(f"downloaded {received} of {size} bytes through the API")
        figures["rss_growth_mib"] = (await sampler.stop() - baseline) / MIB
        figures["baseline_rss_mib"] = baseline / MIB
        with contextlib.suppress(Exception):
            await s3.delete_object(Bucket=settings.s3_bucket, Key=key)
    figures["runs_rps"] = await _rps(url, "/v1/runs/bench-run", token, requests)
    figures["healthz_rps"] = await _rps(url, "/healthz", token, requests)
    return figures


def _report(console: Console, f: dict[str, float], size: int, requests: int) -> None:
    mib = size / MIB
    table = Table(title=f"{mib:,.0f} MiB each way, API process beside aioboto3 straight to the same S3")
    for column in ("path", "upload MiB/s", "download MiB/s"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row("aioboto3 -> S3", f"{mib / f['direct_upload_s']:,.1f}", f"{mib / f['direct_download_s']:,.1f}")
    table.add_row("WorkflowApi -> S3", f"{mib / f['api_upload_s']:,.1f}", f"{mib / f['api_download_s']:,.1f}")
    console.print(table)
    console.print(
        f"API time / direct time: upload {f['api_upload_s'] / f['direct_upload_s']:.2f}x, "
        f"download {f['api_download_s'] / f['direct_download_s']:.2f}x (goal: within 1.5x); "
        f"API peak RSS growth {f['rss_growth_mib']:.1f} MiB over its {f['baseline_rss_mib']:.0f} MiB baseline "
        "(goal: under 100 MiB)"
    )
    console.print(
        f"GET /v1/runs/{{id}}: {f['runs_rps']:,.0f} req/s beside /healthz {f['healthz_rps']:,.0f} req/s "
        f"({requests} requests, 32 connections; each run read authenticates the token and reads the store)"
    )
