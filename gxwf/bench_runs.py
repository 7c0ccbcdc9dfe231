"""`gxwf bench runs`: what orchestration costs per run on the local backend.

N short runs from C consumers through the whole pipeline (request -> queue -> dispatcher -> start handler ->
watcher -> tracker), beside the same commands started by a bare asyncio subprocess loop with the same
concurrency, in the same run. Reports runs per minute and the orchestration's own latencies:
request -> running, and process exit -> succeeded recorded.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RUN_MACHINE, RunDocument

COMMAND = ["/bin/sh", "-c", "exit 0"]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")


async def _bare_loop(n: int, concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    launch: list[float] = []

    async def one() -> None:
        async with gate:
            asked = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(*COMMAND)
            launch.append(time.perf_counter() - asked)
            await proc.wait()

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - start, launch


async def drive_runs(
    service: HandlerService, requests: list[RunRequested]
) -> tuple[float, dict[str, float], list[RunDocument]]:
    """Publish the runs and wait until each has ended: the wall time, when each was asked for, the ended runs."""
    assert service.bus is not None
    asked: dict[str, float] = {}
    start = time.perf_counter()
    for request in requests:
        asked[request.run_id] = time.time()
        await service.bus.publish(new_event(s.RUN_REQUESTED, request, subject=request.run_id))
    while await service.store.count(RunDocument, states=sorted(RUN_MACHINE.terminal)) < len(requests):
        await asyncio.sleep(0.2)
    seconds = time.perf_counter() - start
    return seconds, asked, await service.store.find(RunDocument, limit=len(requests) + 1)


def running_at(run: RunDocument) -> float | None:
    return next((h.at.timestamp() for h in run.history if h.to == "running"), None)


async def _pipeline(
    settings: Settings, endpoints: Endpoints, n: int, consumers: int
) -> tuple[float, list[float], list[float]]:
    # The benchmark measures the pipeline, not the catalogue: its runs carry their own command.
    service = HandlerService(settings.model_copy(update={"adhoc_runs": True}), endpoints)
    await service.start()
    requests = [
        RunRequested(
            run_id=f"bench-{uuid.uuid4().hex[:8]}-{i}",
            consumer_id=f"consumer-{i % consumers}",
            asset_id="bench",
            spec=RunSpec(command=COMMAND),
        )
        for i in range(n)
    ]
    try:
        seconds, asked, runs = await drive_runs(service, requests)
        to_running: list[float] = []
        exit_to_recorded: list[float] = []
        for run in runs:
            running = running_at(run)
            ended = run.history[-1].at.timestamp()
            exit_file = service.local_compute.attempt_dir(run.id, run.attempt) / "exit_code"
            if running is not None:
                to_running.append(running - asked[run.id])
            if exit_file.exists():
                exit_to_recorded.append(max(ended - exit_file.stat().st_mtime, 0.0))
    finally:
        await service.stop()
    return seconds, to_running, exit_to_recorded


async def run_benchmark(settings: Settings, n: int, consumers: int, *, console: Console) -> None:
    from gxwf.stack_users import bench_stack

    async with bench_stack(settings) as eps:
        with tempfile.TemporaryDirectory(prefix="gxwf-bench-runs-") as tmp:
            bench_settings = settings.model_copy(
                update={"state_dir": Path(tmp), "mongo_database": f"bench_runs_{uuid.uuid4().hex[:8]}"}
            )
            seconds, to_running, exit_to_recorded = await _pipeline(
                bench_settings, Endpoints.of_stack(eps, "handlers").with_s3(settings), n, consumers
            )
        bare_seconds, launch = await _bare_loop(n, settings.runs_per_site)

    table = Table(title=f"runs: {n} runs of `{' '.join(COMMAND)}` from {consumers} consumers, local backend")
    for column in (
        "path",
        "runs/min",
        "p50 to running ms",
        "p99 to running ms",
        "p50 exit->recorded ms",
        "p99 exit->recorded ms",
    ):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_row(
        "gxwf pipeline",
        f"{n / seconds * 60:,.0f}",
        f"{_pct(to_running, 0.5):.0f}",
        f"{_pct(to_running, 0.99):.0f}",
        f"{_pct(exit_to_recorded, 0.5):.0f}",
        f"{_pct(exit_to_recorded, 0.99):.0f}",
    )
    table.add_row(
        f"bare asyncio subprocess loop ({settings.runs_per_site} at once)",
        f"{n / bare_seconds * 60:,.0f}",
        f"{_pct(launch, 0.5):.0f}",
        f"{_pct(launch, 0.99):.0f}",
        "0",
        "0",
    )
    console.print(table)
    console.print(
        f"pipeline / bare loop: throughput {bare_seconds / seconds:.3f}x; "
        f"median orchestration overhead {statistics.median(to_running) * 1000:.0f} ms to running, "
        f"{statistics.median(exit_to_recorded) * 1000:.0f} ms from exit to succeeded "
        f"(watch interval {settings.watch_interval_seconds:g}s, "
        f"dispatch interval {settings.dispatch_interval_seconds:g}s)"
    )
