"""Runs on a Slurm site through the whole pipeline: the handlers (jobs, results) on the embedded NATS, MongoDB-wire
and S3 servers, with GXWF_COMPUTE_BACKEND=slurm, and the real cluster. What a consumer observes: the run's
state, its published results (same manifest and sha256 as on other sites) and its log."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
import yaml
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from adapters.slurm_compute import script
from devstack.slurm import SlurmCluster
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RetryPolicy, RunRequested, RunSpec, RunStopRequested, StagedInput
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.names import MANIFEST_FILE
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument, RunState

# The backbone's fixtures: fresh streams and a fresh database per test on the session's servers.
from tests.backbone.conftest import endpoints, eventually, finished, js, nc, settings, store  # noqa: F401

CONSUMER = "did:web:consumer.example:hpc"
ROUTE = b"x,y\n0,0\n10,5\n"


@pytest_asyncio.fixture
async def service(
    settings: Settings,  # noqa: F811
    endpoints: Endpoints,  # noqa: F811
    js: JetStreamContext,  # noqa: F811
    store: MongoStateStore,  # noqa: F811
    slurm_cluster: SlurmCluster,
    tmp_path: Path,
) -> AsyncIterator[HandlerService]:
    job_root = slurm_cluster.jobs_dir / f"p-{uuid.uuid4().hex[:8]}"
    job_root.mkdir(mode=0o755)
    sites = tmp_path / "sites.yaml"
    sites.write_text(
        yaml.safe_dump(
            {
                "sites": [
                    {
                        "name": "hpc",
                        "backend": "slurm",
                        "slurm": {
                            "url": slurm_cluster.rest_url,
                            "user": slurm_cluster.user,
                            "jwt_key_file": str(slurm_cluster.jwt_key),
                            "partition": slurm_cluster.partition,
                            "job_root": str(job_root),
                        },
                        "capabilities": {"cpu": slurm_cluster.cpus, "memory": "8Gi", "gpu": slurm_cluster.gpus},
                    }
                ]
            }
        )
    )
    on_slurm = settings.model_copy(
        update={"compute_backend": "slurm", "compute_site": "hpc", "sites_file": sites, "stop_timeout_seconds": 15}
    )
    svc = HandlerService(on_slurm, endpoints, groups=["jobs", "results"])
    await svc.start()
    yield svc
    await svc.stop()


async def request(service: HandlerService, run_id: str, spec: RunSpec) -> None:
    assert service.bus is not None
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id=run_id, consumer_id=CONSUMER, asset_id="hpc-drive", spec=spec))
    )


async def published(store: MongoStateStore, run_id: str) -> ResultDocument:  # noqa: F811
    async def check() -> ResultDocument | None:
        doc = await store.get(ResultDocument, run_id)
        return doc if doc is not None and doc.state == ResultState.PUBLISHED else None

    found: ResultDocument = await eventually(check, timeout=40)
    return found


async def test_a_run_stages_its_inputs_runs_as_a_job_and_publishes_its_results(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    assert service.slurm_compute is not None
    await service.objects.put_bytes("inputs/hpc/in-1/route.csv", ROUTE)
    inputs = [StagedInput(name="route", kind="file", input_id="in-1", prefix="inputs/hpc/in-1/", path="data/route.csv")]
    command = 'echo "route has $(wc -l < data/route.csv) lines"; cp "$GXWF_INPUT_ROUTE" outputs/route-copy.csv'
    await request(service, "hpc-1", RunSpec(command=["/bin/sh", "-c", command], inputs=inputs))

    result = await published(store, "hpc-1")
    run = await store.get(RunDocument, "hpc-1")
    assert run is not None and (run.state, run.backend, run.site) == (RunState.SUCCEEDED, "slurm", "hpc")
    assert run.handle is not None and run.handle.startswith("slurm:")
    files = {f["name"]: f for f in result.files}
    assert set(files) == {"route-copy.csv"}
    assert files["route-copy.csv"]["sha256"] == hashlib.sha256(ROUTE).hexdigest()
    assert await service.objects.get_bytes(files["route-copy.csv"]["key"]) == ROUTE
    assert result.manifest_key is not None and result.manifest_key.endswith(MANIFEST_FILE)
    manifest = json.loads(await service.objects.get_bytes(result.manifest_key))
    assert manifest["files"][0]["sha256"] == files["route-copy.csv"]["sha256"]
    assert result.log_key is not None
    assert await service.objects.get_bytes(result.log_key) == b"route has 3 lines\n"

    # Published: the job's directory (its plan of presigned URLs, inputs, work, outputs) is removed.
    run_dir = service.slurm_compute.dirs.run_dir("hpc-1")

    async def removed() -> bool:
        return not run_dir.exists()

    await eventually(removed, timeout=10)


async def test_the_job_holds_presigned_urls_and_no_credentials(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    assert service.slurm_compute is not None
    await request(service, "hpc-2", RunSpec(command=["sleep", "3"]))
    plan = service.slurm_compute.dirs.attempt_dir("hpc-2", 1) / script.PLAN_NAME

    async def written() -> bool:
        return plan.exists()

    await eventually(written, timeout=10)
    assert plan.stat().st_mode & 0o077 == 0, "readable by the job's user only"
    secret = service.settings.s3_secret_key
    assert secret is not None and secret.get_secret_value() not in plan.read_text()
    assert "X-Amz-Signature" in json.loads(plan.read_text())["outputs_url"]
    await published(store, "hpc-2")


async def test_a_failing_run_is_retried_by_its_policy_and_every_attempt_is_in_the_log(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    command = 'echo "attempt $GXWF_ATTEMPT"; [ "$GXWF_ATTEMPT" -gt 1 ] || exit 3'
    spec = RunSpec(command=["/bin/sh", "-c", command], retry=RetryPolicy(limit=1, backoff_seconds=0.1, exit_codes=[3]))
    await request(service, "hpc-3", spec)
    result = await published(store, "hpc-3")
    run = await store.get(RunDocument, "hpc-3")
    assert run is not None and (run.state, run.attempt) == (RunState.SUCCEEDED, 2)
    assert result.log_key is not None
    assert await service.objects.get_bytes(result.log_key) == b"attempt 1\n\n=== attempt 2 ===\nattempt 2\n"


async def test_a_failing_job_fails_the_run_with_its_exit_code(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    await request(service, "hpc-4", RunSpec(command=["/bin/sh", "-c", "echo 'town not found' >&2; exit 3"]))
    result = await published(store, "hpc-4")
    run = await eventually(lambda: finished(store, "hpc-4"))
    assert (run.state, run.exit_code) == (RunState.FAILED, 3)
    assert result.log_key is not None
    assert await service.objects.get_bytes(result.log_key) == b"town not found\n"


async def test_a_run_over_its_running_limit_is_cancelled_and_ends_timed_out(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    assert service.slurm_compute is not None
    await request(service, "hpc-5", RunSpec(command=["/bin/sh", "-c", "echo started; sleep 120"], timeout_seconds=2))
    run = await eventually(lambda: finished(store, "hpc-5"), timeout=30)
    assert run.state == RunState.TIMED_OUT
    job = await service.slurm_compute.rest.job(int(str(run.handle).split(":")[1]))
    assert job is not None and job.state == "CANCELLED", "the job was cancelled, not left to Slurm's limit"
    result = await published(store, "hpc-5")
    assert result.log_key is not None
    log = await service.objects.get_bytes(result.log_key)
    # What the job wrote, then what Slurm says about the cancel: the consumer sees why it ended there.
    assert log.startswith(b"started\n") and b"CANCELLED" in log


async def test_a_run_that_slurm_keeps_pending_ends_timed_out_with_slurms_reason(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
    slurm_cluster: SlurmCluster,
) -> None:
    assert service.slurm_compute is not None
    # Every GPU of the cluster held by a job of someone else's: a GPU run waits for resources.
    holder = "gpu-holder-" + uuid.uuid4().hex[:6]
    await service.slurm_compute.start(holder, RunSpec(command=["sleep", "60"], gpu_count=slurm_cluster.gpus), {})
    try:
        spec = RunSpec(command=["true"], gpu_count=1, pending_timeout_seconds=3)
        await request(service, "hpc-6", spec)
        run = await eventually(lambda: finished(store, "hpc-6"), timeout=30)
        assert run.state == RunState.TIMED_OUT
        assert run.reason is not None and run.reason.startswith("pending longer than 3s: Slurm job")
        assert "(Resources)" in run.reason
        job = await service.slurm_compute.rest.job(int(str(run.handle).split(":")[1]))
        assert job is not None and job.state == "CANCELLED"
    finally:
        await service.slurm_compute.stop(holder)


async def test_a_stopped_run_cancels_its_running_job(
    service: HandlerService,
    store: MongoStateStore,  # noqa: F811
) -> None:
    assert service.slurm_compute is not None and service.bus is not None
    await request(service, "hpc-7", RunSpec(command=["/bin/sh", "-c", "echo working; sleep 120"]))

    log = service.slurm_compute.dirs.log_path("hpc-7", 1)

    async def working() -> RunDocument | None:
        doc = await store.get(RunDocument, "hpc-7")
        running = doc is not None and doc.state == RunState.RUNNING
        return doc if running and log.exists() and log.read_bytes().startswith(b"working") else None

    await eventually(working, timeout=20)
    await service.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="hpc-7", consumer_id=CONSUMER, reason="by the test"))
    )
    run = await eventually(lambda: finished(store, "hpc-7"), timeout=20)
    assert (run.state, run.reason) == (RunState.STOPPED, "by the test")
    job = await service.slurm_compute.rest.job(int(str(run.handle).split(":")[1]))
    assert job is not None and job.state == "CANCELLED"
    result = await published(store, "hpc-7")
    assert result.log_key is not None
    assert (await service.objects.get_bytes(result.log_key)).startswith(b"working\n")
