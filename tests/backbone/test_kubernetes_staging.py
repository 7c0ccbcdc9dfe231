"""Inputs in and outputs out of a Kubernetes run pod by its own stage steps, with presigned URLs only.

The fake API runs no containers, so the test plays the pod's stage steps: it takes the attempt's plan from the
Secret the backend made, runs the real `gxwf stage in` and `gxwf stage out` against the real S3, and checks
that the results handler publishes what the "workload" wrote."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from nats.js import JetStreamContext

from adapters.kubernetes_compute import manifests as m
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RetryPolicy, RunRequested, RunSpec, StagedInput
from fakekube import FakeKubeServer, Scenario
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from schemas.staging import StagePlan
from tests.backbone.conftest import eventually
from tests.backbone.kube import kube_service

CONSUMER = "did:web:consumer.example:staged"
NS = m.namespace_name(CONSUMER)
ROUTE = b"x,y\n0,0\n10,5\n"
MAPS = {"town01.xodr": b"<OpenDRIVE/>", "signs/list.txt": b"stop\nyield\n"}


@pytest_asyncio.fixture
async def service(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, kube: FakeKubeServer
) -> AsyncIterator[HandlerService]:
    svc = await kube_service(settings, endpoints, kube, ["jobs", "results"])
    yield svc
    await svc.stop()


def gxwf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gxwf", *args], capture_output=True, text=True, timeout=60)


async def upload_inputs(service: HandlerService) -> list[StagedInput]:
    await service.objects.put_bytes("inputs/staged/in-1/route.csv", ROUTE)
    for name, data in MAPS.items():
        await service.objects.put_bytes(f"inputs/staged/in-2/{name}", data)
    return [
        StagedInput(name="route", kind="file", input_id="in-1", prefix="inputs/staged/in-1/", path="data/route.csv"),
        StagedInput(name="maps", kind="directory", input_id="in-2", prefix="inputs/staged/in-2/", files=2),
    ]


async def the_plan(kube: FakeKubeServer, run_id: str, attempt: int = 1) -> dict[str, Any] | None:
    secret = kube.get("Secret", m.stage_secret_name(run_id, attempt), NS)
    if secret is None:
        return None
    if "stringData" in secret:
        return json.loads(secret["stringData"][m.STAGE_PLAN])
    return json.loads(base64.b64decode(secret["data"][m.STAGE_PLAN]))


async def test_the_pod_stages_its_inputs_in_and_its_outputs_out_by_presigned_urls(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer, tmp_path: Path
) -> None:
    assert service.bus is not None and kube.controller is not None
    inputs = await upload_inputs(service)
    # Long enough for the test to play the stage steps while the "workload" runs.
    kube.controller.plan(Scenario("succeed", duration=4, log="driving"), labels={m.RUN_LABEL: m.run_label("st-1")})
    spec = RunSpec(image="carla:0.9", command=["python", "drive.py"], inputs=inputs)
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id="st-1", consumer_id=CONSUMER, asset_id="carla", spec=spec))
    )
    plan = await eventually(lambda: the_plan(kube, "st-1"))
    StagePlan.model_validate(plan)
    assert service.settings.s3_secret_key.get_secret_value() not in json.dumps(plan), "no credentials in the pod"
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))

    # The init container: every input where the workload looks for it, checked against its sha256.
    dest, work = tmp_path / "inputs", tmp_path / "work"
    staged = gxwf("stage", "in", "--plan", str(plan_file), "--dest", str(dest), "--workdir", str(work))
    assert staged.returncode == 0, staged.stderr
    assert (dest / "route").read_bytes() == ROUTE
    assert {
        str(p.relative_to(dest / "maps")): p.read_bytes() for p in (dest / "maps").rglob("*") if p.is_file()
    } == MAPS
    assert (work / "data" / "route.csv").read_bytes() == ROUTE, "the asset's relative path is linked"

    # The workload writes outputs (and a link out, which must not travel); the sidecar uploads when stopped.
    outputs = tmp_path / "outputs"
    (outputs / "plots").mkdir(parents=True)
    (outputs / "trajectory.csv").write_bytes(b"t,x,y\n0,0,0\n")
    (outputs / "plots" / "route.png").write_bytes(b"\x89PNG fake")
    (outputs / "secrets").symlink_to("/etc/hostname")
    uploaded = gxwf("stage", "out", "--plan", str(plan_file), "--src", str(outputs), "--now")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "2 file(s) uploaded" in uploaded.stdout

    async def published() -> ResultDocument | None:
        doc = await store.get(ResultDocument, "st-1")
        return doc if doc is not None and doc.state == ResultState.PUBLISHED else None

    result = await eventually(published, timeout=30)
    run = await store.get(RunDocument, "st-1")
    assert run is not None and run.state == RunState.SUCCEEDED
    files = {f["name"]: f for f in result.files}
    assert set(files) == {"trajectory.csv", "plots/route.png"}
    assert files["trajectory.csv"]["sha256"] == hashlib.sha256(b"t,x,y\n0,0,0\n").hexdigest()
    assert await service.objects.get_bytes(files["plots/route.png"]["key"]) == b"\x89PNG fake"


async def test_a_tampered_or_missing_input_fails_the_stage_step_with_the_reason(
    service: HandlerService, kube: FakeKubeServer, tmp_path: Path
) -> None:
    assert service.bus is not None and kube.controller is not None
    inputs = await upload_inputs(service)
    kube.controller.plan(Scenario("succeed", duration=4), labels={m.RUN_LABEL: m.run_label("st-2")})
    spec = RunSpec(image="carla:0.9", command=["python", "drive.py"], inputs=inputs)
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id="st-2", consumer_id=CONSUMER, asset_id="carla", spec=spec))
    )
    plan = await eventually(lambda: the_plan(kube, "st-2"))
    # Changed in the object store after the run was started: the pod must not run on other data.
    tampered = ROUTE.replace(b"10,5", b"10,6")  # same size: only the sha256 tells
    await service.objects.put_bytes("inputs/staged/in-1/route.csv", tampered)
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    dest = tmp_path / "inputs"
    staged = gxwf("stage", "in", "--plan", str(plan_file), "--dest", str(dest))
    assert staged.returncode == 2
    assert "stage in: input route: sha256" in staged.stderr, staged.stderr
    assert staged.stderr.count("\n") == 1, "one line naming the input, no traceback"
    assert not (dest / "route").exists() and not list(dest.glob("*.partial"))

    bad = tmp_path / "bad.json"
    bad.write_text('{"inputs": [{"name": "x", "kind": "file", "files": []}], "surprise": 1}')
    refused = gxwf("stage", "in", "--plan", str(bad), "--dest", str(dest))
    assert refused.returncode == 2 and "not a stage plan" in refused.stderr and "Traceback" not in refused.stderr


async def test_only_the_last_attempts_outputs_are_published(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer, tmp_path: Path
) -> None:
    assert service.bus is not None and kube.controller is not None
    # Attempt 1 wrote an output and was OOM-killed; attempt 2 (retried by policy) succeeds without its sidecar
    # getting to upload (say the node went away afterwards): attempt 1's file is not the run's result.
    kube.controller.plan(
        [Scenario("oomkill"), Scenario("succeed", duration=3)], labels={m.RUN_LABEL: m.run_label("st-3")}
    )
    spec = RunSpec(
        image="carla:0.9",
        command=["python", "drive.py"],
        memory_mb=64,
        retry=RetryPolicy(limit=1, backoff_seconds=0.1),
    )
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id="st-3", consumer_id=CONSUMER, asset_id="carla", spec=spec))
    )
    plan = await eventually(lambda: the_plan(kube, "st-3", attempt=1))
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(plan))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "stale.csv").write_text("from attempt 1\n")
    assert gxwf("stage", "out", "--plan", str(plan_file), "--src", str(outputs), "--now").returncode == 0

    async def published() -> ResultDocument | None:
        doc = await store.get(ResultDocument, "st-3")
        return doc if doc is not None and doc.state == ResultState.PUBLISHED else None

    result = await eventually(published, timeout=30)
    run = await store.get(RunDocument, "st-3")
    assert run is not None and (run.state, run.attempt) == (RunState.SUCCEEDED, 2)
    assert result.files == []
