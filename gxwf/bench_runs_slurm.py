"""`gxwf bench runs --site NAME`: what orchestration costs per run on a Slurm site.

N short jobs through the whole pipeline (request -> queue -> dispatcher -> batch job through slurmrestd ->
watcher -> tracker -> results), beside the same jobs submitted by a bare loop of `POST /job/submit` and
polling `GET /job/{id}` with httpx against the same slurmrestd, in the same run and with the same concurrency.
Each job writes the time it ends into a file of its own, so exit -> recorded is measured to the millisecond
(Slurm's own times are whole seconds). Without a site of that name in the sites file, `hpc` is a local Slurm
cluster started for the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from adapters.slurm_compute.api import JobRequest, SlurmApi
from adapters.slurm_compute.backend import tokens_for
from events.payloads.run import RunRequested, RunSpec
from gxwf.bench_runs import _pct, drive_runs, running_at
from gxwf.definitions import load_sites
from gxwf.errors import UserError
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from gxwf.slurm_site import HPC_SITE, hpc_site
from schemas.run import RunState
from schemas.sites import SitesConfig, SlurmTarget

_POLL_SECONDS = 0.05
_ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL")


@dataclass
class Measured:
    seconds: float
    to_running: list[float]
    exit_to_recorded: list[float]
    failed: int


def _mark_command(marks: Path, name: str) -> str:
    return f"date +%s.%N > {marks / name}"


def _mark(marks: Path, name: str) -> float | None:
    try:
        return float((marks / name).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _site(settings: Settings, name: str) -> Iterator[tuple[SlurmTarget, Path | None, str]]:
    """The site's Slurm target, its sites file (None: the settings' own) and what it is, in words."""
    configured = {site.name: site for site in load_sites(settings.sites_file).sites}
    if name in configured:
        site = configured[name]
        if site.slurm is None:
            raise UserError(f"--site {name}: a {site.backend} site; this benchmark measures Slurm sites")
        yield site.slurm, None, f"site {name} ({site.slurm.url})"
        return
    if name != HPC_SITE:
        raise UserError(f"--site {name}: no such Slurm site in the sites file (`hpc` alone starts a local cluster)")
    from gxwf.slurm_local import check_installed

    check_installed()
    from devstack.slurm import start_slurm

    base = Path(tempfile.mkdtemp(prefix="gxwf-slurm-"))
    base.chmod(0o755)
    try:
        with start_slurm(base / "cluster") as cluster:
            entry = hpc_site(cluster)
            sites_file = base / "sites.json"
            sites_file.write_text(json.dumps({"sites": [entry]}))
            target = SitesConfig.model_validate({"sites": [entry]}).sites[0].slurm
            assert target is not None
            yield target, sites_file, f"a local Slurm cluster ({cluster.cpus} CPUs)"
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _BareClient:
    """slurmrestd with nothing of ours in between: httpx, the site's token, the version's body shapes."""

    def __init__(self, target: SlurmTarget, marks: Path) -> None:
        self.target = target
        self.marks = marks
        self.api = SlurmApi(target.api_version)
        self.tokens = tokens_for(target)
        self.client = httpx.AsyncClient(base_url=target.url.rstrip("/"), timeout=30)

    async def _headers(self) -> dict[str, str]:
        return {"X-SLURM-USER-NAME": self.target.user, "X-SLURM-USER-TOKEN": await self.tokens.token()}

    async def submit(self, name: str) -> int:
        job = JobRequest(
            name=name,
            comment="gxwf bench runs: bare loop",
            script=f"#!/bin/sh\n{_mark_command(self.marks, name)}\n",
            working_directory=str(self.marks),
            standard_output="/dev/null",
            environment={"PATH": "/usr/bin:/bin"},
            cpus=1,
            memory_mb=None,
            time_limit_minutes=5,
            partition=self.target.partition,
            account=self.target.account,
            qos=self.target.qos,
        )
        body = self.api.submit_body(job)
        response = await self.client.post(self.api.submit_path(), json=body, headers=await self._headers())
        job_id = self.api.submitted_job_id(response.json()) if response.status_code == 200 else None
        if job_id is None:
            raise UserError(f"slurmrestd refused a job: HTTP {response.status_code} {response.text[:300]}")
        return job_id

    async def state(self, job_id: int) -> str:
        response = await self.client.get(self.api.job_path(job_id), headers=await self._headers())
        jobs = self.api.jobs(response.json()) if response.status_code == 200 else []
        return jobs[0].state if jobs else "UNKNOWN"

    async def one(self, name: str, asked: float) -> tuple[float | None, float | None, bool]:
        """Submit, follow to its end: (asked -> running seen, exit -> end seen, succeeded)."""
        job_id = await self.submit(name)
        running: float | None = None
        while True:
            state = await self.state(job_id)
            seen = time.time()
            if state == "RUNNING" and running is None:
                running = seen - asked
            if state in _ENDED:
                exited = _mark(self.marks, name)
                return running, (seen - exited if exited is not None else None), state == "COMPLETED"
            await asyncio.sleep(_POLL_SECONDS)

    async def close(self) -> None:
        await self.client.aclose()


async def _bare_loop(client: _BareClient, n: int, concurrency: int) -> Measured:
    """All N asked for at once, as the pipeline's requests are, and submitted `concurrency` at a time: request ->
    running includes the wait for a slot on both paths."""
    gate = asyncio.Semaphore(concurrency)
    asked = time.time()

    async def one(i: int) -> tuple[float | None, float | None, bool]:
        async with gate:
            return await client.one(f"bare-{i}", asked)

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - start
    return Measured(
        seconds,
        [r for r, _, _ in results if r is not None],
        [e for _, e, _ in results if e is not None],
        sum(1 for _, _, ok in results if not ok),
    )


async def _pipeline(
    settings: Settings, endpoints: Endpoints, site: str, marks: Path, n: int, consumers: int
) -> Measured:
    # The benchmark measures the pipeline, not the catalogue: its runs carry their own command.
    service = HandlerService(settings.model_copy(update={"adhoc_runs": True}), endpoints)
    await service.start()
    requests = []
    for i in range(n):
        run_id = f"bench-{uuid.uuid4().hex[:8]}-{i}"
        spec = RunSpec(command=["/bin/sh", "-c", _mark_command(marks, run_id)], timeout_seconds=300)
        requests.append(
            RunRequested(run_id=run_id, consumer_id=f"consumer-{i % consumers}", asset_id="bench", site=site, spec=spec)
        )
    try:
        seconds, asked, runs = await drive_runs(service, requests)
        measured = Measured(seconds, [], [], 0)
        for run in runs:
            running = running_at(run)
            exited = _mark(marks, run.id)
            if running is not None:
                measured.to_running.append(running - asked[run.id])
            if exited is not None:
                measured.exit_to_recorded.append(max(run.history[-1].at.timestamp() - exited, 0.0))
            measured.failed += run.state != RunState.SUCCEEDED
    finally:
        await service.stop()
    return measured


async def run_slurm_benchmark(
    settings: Settings, n: int, consumers: int, site: str, *, console: Console
) -> tuple[Measured, Measured]:
    """The pipeline's and the bare loop's figures, also printed."""
    from gxwf.stack_users import bench_stack

    concurrency = settings.runs_per_site
    with _site(settings, site) as (target, sites_file, described):
        marks = Path(target.job_root) / f"gxwf-bench-{uuid.uuid4().hex[:8]}"
        marks.mkdir(mode=0o755)
        bare = _BareClient(target, marks)
        try:
            # A fresh slurmctld schedules nothing in its first seconds: both paths start after one job ran.
            await bare.one("warm-up", time.time())
            async with bench_stack(settings) as eps:
                with tempfile.TemporaryDirectory(prefix="gxwf-bench-runs-") as tmp:
                    update = {
                        "state_dir": Path(tmp),
                        "mongo_database": f"bench_runs_{uuid.uuid4().hex[:8]}",
                        "compute_backend": "slurm",
                        "compute_site": site,
                        "sites_file": sites_file or settings.sites_file,
                    }
                    endpoints = Endpoints.of_stack(eps, "handlers").with_s3(settings)
                    pipeline = await _pipeline(settings.model_copy(update=update), endpoints, site, marks, n, consumers)
            loop = await _bare_loop(bare, n, concurrency)
        finally:
            await bare.close()
            shutil.rmtree(marks, ignore_errors=True)
    _report(console, n, consumers, described, concurrency, pipeline, loop)
    return pipeline, loop


def _report(
    console: Console, n: int, consumers: int, described: str, concurrency: int, pipeline: Measured, loop: Measured
) -> None:
    table = Table(title=f"runs: {n} one-line batch jobs from {consumers} consumers on {described}")
    for column in (
        "path",
        "runs/min",
        "p50 to running ms",
        "p99 to running ms",
        "p50 exit->recorded ms",
        "p99 exit->recorded ms",
        "not succeeded",
    ):
        table.add_column(column, justify="left" if column == "path" else "right")
    for path, measured in (
        ("gxwf pipeline (request -> batch job -> results)", pipeline),
        (f"bare httpx loop: POST /job/submit, GET /job/{{id}} ({concurrency} at once)", loop),
    ):
        table.add_row(
            path,
            f"{n / measured.seconds * 60:,.0f}",
            f"{_pct(measured.to_running, 0.5):.0f}",
            f"{_pct(measured.to_running, 0.99):.0f}",
            f"{_pct(measured.exit_to_recorded, 0.5):.0f}",
            f"{_pct(measured.exit_to_recorded, 0.99):.0f}",
            str(measured.failed),
        )
    console.print(table)
    console.print(
        f"pipeline / bare loop: throughput {loop.seconds / pipeline.seconds:.3f}x; "
        f"p50 to running {_pct(pipeline.to_running, 0.5) / _pct(loop.to_running, 0.5):.2f}x, "
        f"p50 exit->recorded {_pct(pipeline.exit_to_recorded, 0.5) / _pct(loop.exit_to_recorded, 0.5):.2f}x "
        "the bare loop's"
    )
