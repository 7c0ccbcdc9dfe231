"""`gxwf bench ingress --dps`, second part: how long a connector waits from its Data Plane Signaling `start` to
the `started` callback (the consumer's WorkflowApi deployed on the local site and its token granted).

A whole system runs (`gxwf up` in a fresh state directory, its signaling URL pointing at a simulated EDC main
control plane); the simulator registers the ingress's /dataflows, sends the start messages, and times each
until its callback arrived; then it terminates every transfer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from edc_simulator import dps
from edc_simulator.connector import SimulatedConnector
from edc_simulator.dps_story import ensure_registered
from edc_simulator.versions import version
from gxwf.bench_ingress import NO_DATAFLOWS, serves_dataflows

ASSET = "shell-count"


@dataclass
class StartedFigures:
    transfers: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errored: int = 0
    refused: int = 0
    missing: int = 0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")


async def _system_up(state: Path, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> tuple[str, str]:
    """The ingress URL and API key of the `gxwf up` writing into `state`, once its handlers run."""
    deadline = time.monotonic() + timeout
    endpoints, key_file = state / "endpoints.json", state / "edc-api-key"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"`gxwf up` exited with status {proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            url = json.loads(endpoints.read_text()).get("edc_ingress")
            key = key_file.read_text().strip()
            if url and key:
                return str(url), key
        await asyncio.sleep(0.2)
    raise RuntimeError(f"`gxwf up` in {state} did not come up within {timeout:g}s")


async def _one(connector: SimulatedConnector, plane: dps.DataPlane, consumer: str, figures: StartedFigures) -> None:
    transfer = connector.ledger.new_transfer(ASSET, consumer)
    seen = len(connector.ledger.signals)
    begun = time.time()
    answer = await connector.http.post(
        f"{plane.endpoint}/start",
        json=dps.start_message("main", transfer, connector.signaling_url),
        headers={connector.api_key_header: connector.api_key},
    )
    if answer.status_code == 200 and answer.json().get("state") == "STARTED":
        figures.latencies.append(time.time() - begun)
        return
    if answer.status_code != 202:
        figures.refused += 1
        return
    callback = await connector.ledger.wait_for_signal(transfer.id, ("started", "errored"), seen, 300)
    if callback is None:
        figures.missing += 1
    elif callback.kind == "errored":
        figures.errored += 1
    else:
        figures.latencies.append(callback.at - begun)


async def run_started_latency(transfers: int, concurrency: int, consumers: int, *, console: Console) -> bool:
    """False (with the reason printed) when the system cannot be measured: no /dataflows, or it did not start."""
    connector = SimulatedConnector(version("main"), ingress_url="http://127.0.0.1:9", api_key="-")
    await connector.start()
    state = Path(tempfile.mkdtemp(prefix="gxwf-bench-dps-"))
    env = os.environ | {"GXWF_EDC_SIGNALING_URL": connector.signaling_url, "GXWF_EDC_RATE_LIMIT_PER_SECOND": "0"}
    env |= {"GXWF_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any measuring
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connector.ingress_url, connector.api_key = await _system_up(state, proc)
        if not await serves_dataflows(connector.ingress_url, connector.api_key):
            console.print(f"[yellow]{NO_DATAFLOWS}; start-to-started latency not measured")
            return False
        plane = await ensure_registered(connector, [])
        if plane is None:
            console.print("[red]the data plane could not be registered at the simulated control plane")
            return False
        figures = StartedFigures(transfers, 0.0)
        gate = asyncio.Semaphore(concurrency)

        async def limited(index: int) -> None:
            async with gate:
                await _one(connector, plane, f"did:web:bench-consumer-{index % consumers}", figures)

        begun = time.perf_counter()
        await asyncio.gather(*(limited(i) for i in range(transfers)))
        figures.seconds = time.perf_counter() - begun
        for transfer in list(connector.ledger.transfers):
            with contextlib.suppress(httpx.HTTPError):
                await connector.http.post(
                    f"{plane.endpoint}/{transfer}/terminate",
                    json=dps.terminate_message("benchmark over"),
                    headers={connector.api_key_header: connector.api_key},
                )
        _report(console, figures, concurrency, consumers)
        return figures.refused == figures.errored == figures.missing == 0
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
        await connector.stop()
        shutil.rmtree(state, ignore_errors=True)


def _report(console: Console, figures: StartedFigures, concurrency: int, consumers: int) -> None:
    # The heading on a line of its own: a table's title wraps at the table's width.
    console.print(
        f"start -> started callback: {figures.transfers} transfers of {consumers} consumers on the local site, "
        f"{concurrency} at a time"
    )
    table = Table()
    for column in ("started", "p50 ms", "p99 ms", "errored", "refused", "no callback", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        str(len(figures.latencies)),
        f"{figures.percentile(0.5):.0f}",
        f"{figures.percentile(0.99):.0f}",
        str(figures.errored),
        str(figures.refused),
        str(figures.missing),
        f"{figures.seconds:.1f}",
    )
    console.print(table)
