"""The Slurm backend against the real cluster (Debian's slurmctld, slurmd and slurmrestd with JWT): jobs
submitted, followed, stopped and found again as an operator and the run's consumer would observe them."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import jwt
import pytest

from adapters.slurm_compute import SlurmJobBackend, script
from adapters.slurm_compute.api import SlurmApi
from adapters.slurm_compute.rest import SlurmRest
from adapters.slurm_compute.tokens import FileTokens, MintedTokens, TokenSource
from devstack.slurm import SlurmCluster
from events.payloads.run import RunSpec
from ports.compute import StartRefused, WorkloadPhase, WorkloadStatus


def backend_on(cluster: SlurmCluster, job_root: Path, tokens: TokenSource | None = None) -> SlurmJobBackend:
    tokens = tokens or MintedTokens(cluster.jwt_key, cluster.user, lifespan_seconds=300)
    rest = SlurmRest(cluster.rest_url, cluster.user, tokens, SlurmApi("v0.0.38"))
    return SlurmJobBackend(
        rest, job_root, site="hpc", partition=cluster.partition, stop_timeout_seconds=15, poll_seconds=0.05
    )


@pytest.fixture
def job_root(slurm_cluster: SlurmCluster) -> Path:
    # Under the cluster's jobs directory: the job (root, as the token's user) and this test both reach it.
    root = slurm_cluster.jobs_dir / f"t-{uuid.uuid4().hex[:8]}"
    root.mkdir(mode=0o755)
    return root


@pytest.fixture
async def backend(slurm_cluster: SlurmCluster, job_root: Path) -> AsyncIterator[SlurmJobBackend]:
    b = backend_on(slurm_cluster, job_root)
    yield b
    await b.close()


def run_id() -> str:
    return f"run-{uuid.uuid4().hex[:10]}"


async def ended(backend: SlurmJobBackend, run: str, attempt: int = 1, timeout: float = 30.0) -> WorkloadStatus:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await backend.status(run, attempt=attempt)
        if status.phase is not WorkloadPhase.RUNNING:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run} still running after {timeout}s: {status}")


async def running(backend: SlurmJobBackend, run: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await backend.status(run)
        if status.phase is WorkloadPhase.RUNNING and not status.waiting:
            return
        assert status.phase is WorkloadPhase.RUNNING, status
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run} never started")


async def gxwf_jobs(backend: SlurmJobBackend, run: str) -> list[int]:
    prefix = f"gxwf-{script.run_label(run)}-"
    return [job.job_id for job in await backend.rest.jobs() if job.name.startswith(prefix)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


async def test_a_run_is_a_job_that_succeeds_with_its_outputs_log_and_resources(
    backend: SlurmJobBackend, slurm_cluster: SlurmCluster
) -> None:
    run = run_id()
    spec = RunSpec(
        command=["/bin/sh", "-c", 'echo "driving $TOWN on $SLURM_JOB_CPUS_PER_NODE cpus"; echo 42 > outputs/count.txt'],
        cpu=2,
        memory_mb=200,
        gpu_count=1,
        timeout_seconds=90,
    )
    handle = await backend.start(run, spec, {"TOWN": "Town01"})
    assert handle.startswith("slurm:")
    status = await ended(backend, run)
    assert (status.phase, status.exit_code, status.failure) == (WorkloadPhase.EXITED, 0, None)
    (job,) = [j for j in await backend.rest.jobs() if j.job_id == int(handle.split(":")[1])]
    assert job.comment == f"gxwf run {run} attempt 1"
    detail = httpx.get(
        f"{slurm_cluster.rest_url}/slurm/v0.0.38/job/{job.job_id}",
        headers={"X-SLURM-USER-NAME": slurm_cluster.user, "X-SLURM-USER-TOKEN": slurm_cluster.mint_token(60)},
    ).json()["jobs"][0]
    # What the asset asked for is what Slurm granted: CPUs, memory, a GPU, the running limit in minutes.
    assert "cpu=2" in detail["tres_req_str"] and "mem=200M" in detail["tres_req_str"]
    assert detail["tres_per_node"] == "gres:gpu:1" and detail["time_limit"] == 2
    artifacts = await backend.artifacts(run)
    assert [(name, path.read_text()) for name, path in artifacts.outputs] == [("count.txt", "42\n")]
    assert artifacts.log is not None and artifacts.log.read_text() == "driving Town01 on 2 cpus\n"


async def test_a_failing_job_reports_its_exit_code_and_its_log(backend: SlurmJobBackend) -> None:
    run = run_id()
    await backend.start(run, RunSpec(command=["/bin/sh", "-c", "echo 'no route given' >&2; exit 3"]), {})
    status = await ended(backend, run)
    assert (status.phase, status.exit_code, status.failure) == (WorkloadPhase.EXITED, 3, "exit_code")
    follow = [chunk async for chunk in backend.follow_log(run, attempt=1)]
    assert b"".join(follow) == b"no route given\n"
    assert b"".join([c async for c in backend.follow_log(run, attempt=1, offset=3)]) == b"route given\n"


async def test_the_live_log_follows_the_output_file_while_the_job_runs(backend: SlurmJobBackend) -> None:
    run = run_id()
    await backend.start(run, RunSpec(command=["/bin/sh", "-c", "echo one; sleep 1.5; echo two"]), {})
    seen: list[tuple[float, bytes]] = []
    async for chunk in backend.follow_log(run, attempt=1):
        seen.append((time.monotonic(), chunk))
    assert b"".join(c for _, c in seen) == b"one\ntwo\n"
    assert seen[-1][0] - seen[0][0] > 1.0, "the first line arrived while the job still ran"


async def test_gpus_beyond_the_cluster_or_a_wrong_partition_are_refused_at_once(
    slurm_cluster: SlurmCluster, job_root: Path
) -> None:
    b = backend_on(slurm_cluster, job_root)
    try:
        with pytest.raises(StartRefused, match="node configuration is not available"):
            await b.start(run_id(), RunSpec(command=["true"], gpu_count=slurm_cluster.gpus + 1), {})
        b.partition = "no-such-partition"
        with pytest.raises(StartRefused, match="Invalid partition name"):
            await b.start(run_id(), RunSpec(command=["true"]), {})
        with pytest.raises(StartRefused, match="bare_command"):
            await b.start(run_id(), RunSpec(image="carla:0.9", command=["drive"]), {})
    finally:
        await b.close()


async def test_stopping_a_running_job_ends_its_processes(backend: SlurmJobBackend, job_root: Path) -> None:
    run = run_id()
    await backend.start(run, RunSpec(command=["/bin/sh", "-c", "echo $$ > outputs/pid; exec sleep 120"]), {})
    await running(backend, run)
    pid_file = backend.dirs.attempt_dir(run, 1) / "outputs" / "pid"
    deadline = time.monotonic() + 10
    while not pid_file.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    pid = int(pid_file.read_text())
    assert pid_alive(pid)
    started = time.monotonic()
    assert await backend.stop(run)
    assert time.monotonic() - started < 10
    assert not pid_alive(pid), "the workload is gone once stop says so"
    status = await backend.status(run)
    assert status.phase is WorkloadPhase.EXITED and status.failure == "vanished"
    assert status.detail is not None and "CANCELLED" in status.detail


async def test_stopping_a_pending_job_cancels_it_before_it_starts(
    backend: SlurmJobBackend, slurm_cluster: SlurmCluster
) -> None:
    holder, waiter = run_id(), run_id()
    # Every GPU of the cluster held: the next GPU job waits for resources.
    await backend.start(holder, RunSpec(command=["sleep", "60"], gpu_count=slurm_cluster.gpus), {})
    await running(backend, holder)
    await backend.start(waiter, RunSpec(command=["/bin/sh", "-c", "touch outputs/ran"], gpu_count=1), {})
    await asyncio.sleep(1.5)  # a scheduling pass or so
    status = await backend.status(waiter)
    assert status.phase is WorkloadPhase.RUNNING and status.waiting, status
    assert status.detail is not None and "pending" in status.detail
    assert await backend.stop(waiter)
    assert (await backend.status(waiter)).detail is not None
    assert await backend.stop(holder)
    assert not (backend.dirs.attempt_dir(waiter, 1) / "outputs" / "ran").exists()


async def test_a_dropped_backend_finds_the_submitted_job_again(slurm_cluster: SlurmCluster, job_root: Path) -> None:
    run = run_id()
    spec = RunSpec(command=["sleep", "2"])
    first = backend_on(slurm_cluster, job_root)
    handle = await first.start(run, spec, {})
    await first.close()
    # The attempt's directory is lost too (a node-local job root): slurmctld's job list still finds it.
    (job_root / script.run_label(run) / "1" / script.JOB_ID_NAME).unlink()
    second = backend_on(slurm_cluster, job_root)
    try:
        assert await second.start(run, spec, {}) == handle
        assert await gxwf_jobs(second, run) == [int(handle.split(":")[1])]
        assert (await ended(second, run)).exit_code == 0
    finally:
        await second.close()


async def test_concurrent_starts_of_an_attempt_submit_one_job(backend: SlurmJobBackend) -> None:
    run = run_id()
    spec = RunSpec(command=["sleep", "1"])
    handles = await asyncio.gather(*(backend.start(run, spec, {}) for _ in range(3)))
    assert len(set(handles)) == 1
    assert await gxwf_jobs(backend, run) == [int(handles[0].split(":")[1])]


_KILLED_AFTER_SUBMIT = """
import asyncio, os, signal, sys
from pathlib import Path
from adapters.slurm_compute.rest import SlurmRest
from tests.slurm.test_backend_cluster import backend_on, cluster_from
from events.payloads.run import RunSpec

async def main() -> None:
    backend = backend_on(cluster_from(sys.argv[1:5]), Path(sys.argv[5]))
    submit = SlurmRest.submit
    async def submit_then_die(self, job):
        job_id = await submit(self, job)
        print(job_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before the job id is written anywhere
    SlurmRest.submit = submit_then_die
    await backend.start(sys.argv[6], RunSpec(command=["sleep", "2"]), {})

asyncio.run(main())
"""


def cluster_from(argv: list[str]) -> SlurmCluster:
    """Enough of a cluster for backend_on in another process."""
    rest_url, user, jwt_key, partition = argv
    return SimpleNamespace(rest_url=rest_url, user=user, jwt_key=Path(jwt_key), partition=partition)  # type: ignore[return-value]


async def test_a_handler_killed_right_after_submitting_never_submits_a_second_job(
    slurm_cluster: SlurmCluster, job_root: Path
) -> None:
    run = run_id()
    args = [slurm_cluster.rest_url, slurm_cluster.user, str(slurm_cluster.jwt_key), slurm_cluster.partition]
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_SUBMIT, *args, str(job_root), run],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert killed.returncode == -9, killed.stderr
    submitted = int(killed.stdout.split()[0])
    assert not (job_root / script.run_label(run) / "1" / script.JOB_ID_NAME).exists()
    restarted = backend_on(slurm_cluster, job_root)
    try:
        assert await restarted.start(run, RunSpec(command=["sleep", "2"]), {}) == f"slurm:{submitted}"
        assert await gxwf_jobs(restarted, run) == [submitted]
        assert (await ended(restarted, run)).exit_code == 0
    finally:
        await restarted.close()


async def test_runs_are_tracked_to_their_end_across_a_slurmrestd_restart(
    backend: SlurmJobBackend, slurm_cluster: SlurmCluster
) -> None:
    runs = [run_id() for _ in range(2)]
    for run in runs:
        await backend.start(run, RunSpec(command=["/bin/sh", "-c", "sleep 2; exit 4"]), {})
    await running(backend, runs[0])
    before = slurm_cluster.pids["slurmrestd"]
    restart = asyncio.create_task(asyncio.to_thread(slurm_cluster.restart_rest))
    # Asked while slurmrestd is away: the answer waits for it rather than failing.
    statuses = await asyncio.gather(*(ended(backend, run) for run in runs))
    await restart
    assert slurm_cluster.pids["slurmrestd"] != before
    assert [(s.phase, s.exit_code) for s in statuses] == [(WorkloadPhase.EXITED, 4)] * 2


async def test_an_expired_minted_token_is_minted_again(slurm_cluster: SlurmCluster, job_root: Path) -> None:
    tokens = MintedTokens(slurm_cluster.jwt_key, slurm_cluster.user, lifespan_seconds=1)
    b = backend_on(slurm_cluster, job_root, tokens)
    try:
        first = await tokens.token()
        tokens._renew_at = time.time() + 3600  # as if the clock had jumped: the cached token is kept past its exp
        await asyncio.sleep(2.1)
        refused = httpx.get(
            f"{slurm_cluster.rest_url}/slurm/v0.0.38/ping",
            headers={"X-SLURM-USER-NAME": slurm_cluster.user, "X-SLURM-USER-TOKEN": first},
        )
        assert refused.status_code != 200, "slurmrestd turns the expired token down"
        await b.rest.ping()
        assert await tokens.token() != first
    finally:
        await b.close()


async def test_an_expired_token_file_is_read_again(slurm_cluster: SlurmCluster, job_root: Path) -> None:
    token_file = job_root / "token"
    key = slurm_cluster.jwt_key.read_bytes()
    now = int(time.time())
    # Someone else keeps the file current; the backend's copy expires first.
    token_file.write_text(jwt.encode({"sun": slurm_cluster.user, "iat": now, "exp": now + 2}, key, "HS256"))
    b = backend_on(slurm_cluster, job_root, FileTokens(token_file))
    try:
        await b.rest.ping()
        await asyncio.sleep(2.1)
        token_file.write_text("SLURM_JWT=" + slurm_cluster.mint_token(600) + "\n")
        run = run_id()
        await b.start(run, RunSpec(command=["true"]), {})
        assert (await ended(b, run)).exit_code == 0
    finally:
        await b.close()
