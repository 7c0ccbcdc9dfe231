"""The jobs handlers with the Kubernetes backend: real NATS and MongoDB, the fake Kubernetes API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio.client import CoreV1Api
from nats.js import JetStreamContext

from adapters.kubernetes_compute import manifests as m
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RetryPolicy, RunRequested, RunSpec, RunStopRequested
from fakekube import FakeKubeServer, Scenario
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished
from tests.backbone.kube import kube_service, on_kubernetes

CONSUMER = "did:web:consumer.example:k8s"
NS = m.namespace_name(CONSUMER)


@pytest_asyncio.fixture
async def service(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, kube: FakeKubeServer
) -> AsyncIterator[HandlerService]:
    svc = await kube_service(settings, endpoints, kube, ["jobs", "results"])
    yield svc
    await svc.stop()


async def request(service: HandlerService, run_id: str, **spec: Any) -> None:
    assert service.bus is not None
    run_spec = RunSpec.model_validate({"image": "busybox:1.36", "command": ["sh", "-c", "echo hi"], **spec})
    await service.bus.publish(
        new_event(
            s.RUN_REQUESTED,
            RunRequested(run_id=run_id, consumer_id=CONSUMER, asset_id="carla-minimal", spec=run_spec),
        )
    )


def plan(kube: FakeKubeServer, run_id: str, scenarios: str) -> None:
    assert kube.controller is not None
    kube.controller.plan(scenarios, labels={m.RUN_LABEL: m.run_label(run_id)})


async def test_a_run_succeeds_as_a_job_in_the_consumers_namespace(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    assert kube.controller is not None
    kube.controller.plan(Scenario("succeed", log="frame 1\nframe 2"), labels={m.RUN_LABEL: m.run_label("k8s-ok")})
    await request(service, "k8s-ok")
    doc: RunDocument = await eventually(lambda: finished(store, "k8s-ok"))
    result: ResultDocument = await eventually(lambda: _published(store, "k8s-ok"))

    assert doc.state == RunState.SUCCEEDED and doc.exit_code == 0 and doc.backend == "kubernetes"
    assert [h.to for h in doc.history] == ["queued", "pending", "running", "succeeded"]
    assert doc.handle == f"{NS}/{m.job_name('k8s-ok', 1)}"
    assert kube.calls["create", "jobs.batch"] == 1
    # The log outlives the pod: archived by the results handler from the pod's log.
    assert result.log_key is not None
    log = await service.objects.get_bytes(result.log_key)
    assert log == b"frame 1\nframe 2\n"
    # Published: the finished Job and its pod go, so a busy consumer's namespace does not fill with them.
    await eventually(lambda: _gone(kube, "jobs"))
    await eventually(lambda: _gone(kube, "pods"))


async def test_a_failed_pod_fails_the_run_with_its_exit_code(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    plan(kube, "k8s-fail", "fail:3")
    await request(service, "k8s-fail", retry={"limit": 2, "backoff_seconds": 0.1})
    doc: RunDocument = await eventually(lambda: finished(store, "k8s-fail"))

    # A plain exit status is the workload's own failure: not retried unless its policy lists the code.
    assert (doc.state, doc.exit_code, doc.attempt) == (RunState.FAILED, 3, 1)
    assert doc.reason == "exit status 3"


async def test_an_oom_killed_attempt_is_retried_by_policy(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    plan(kube, "k8s-oom", "oomkill,succeed")
    await request(service, "k8s-oom", memory_mb=64, retry=RetryPolicy(limit=1, backoff_seconds=0.1).model_dump())
    doc: RunDocument = await eventually(lambda: finished(store, "k8s-oom"))

    assert (doc.state, doc.attempt) == (RunState.SUCCEEDED, 2)
    assert [h.to for h in doc.history] == [
        "queued", "pending", "running", "queued", "pending", "running", "succeeded",
    ]  # fmt: skip
    assert doc.history[3].reason is not None and "OOMKilled" in doc.history[3].reason
    # A Job per attempt, both gone once the result is published.
    assert kube.calls["create", "jobs.batch"] == 2
    assert doc.handle == f"{NS}/{m.job_name('k8s-oom', 2)}"
    await eventually(lambda: _gone(kube, "jobs"))


async def test_stop_deletes_the_job_and_its_pod_before_the_run_is_stopped(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    assert kube.controller is not None
    kube.controller.plan(Scenario("hang", log="step 1\nstep 2"), labels={m.RUN_LABEL: m.run_label("k8s-stop")})
    await request(service, "k8s-stop")
    await eventually(lambda: _in_state(store, "k8s-stop", RunState.RUNNING))
    [pod] = await kube.wait_for(lambda: [p for p in kube.objects("pods", NS) if p["status"].get("phase") == "Running"])
    async with kube.api_client() as api:

        async def printed() -> bool:
            text = await CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS)
            return text == "step 1\nstep 2\n"

        await eventually(printed)
    assert service.bus is not None
    await service.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="k8s-stop", consumer_id=CONSUMER, reason="enough"))
    )
    doc: RunDocument = await eventually(lambda: finished(store, "k8s-stop"))

    assert doc.state == RunState.STOPPED and doc.reason == "enough"
    assert kube.objects("jobs", NS) == [] and kube.objects("pods", NS) == []
    # Deleting the pod deleted its log, so the stop saved it first for the results handler.
    result: ResultDocument = await eventually(lambda: _published(store, "k8s-stop"))
    assert result.log_key is not None and await service.objects.get_bytes(result.log_key) == b"step 1\nstep 2\n"


async def test_an_image_that_never_pulls_times_the_run_out_with_the_reason(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    plan(kube, "k8s-pull", "image-pull-backoff")
    # Long enough for a busy machine's watcher to see the pod's pull fail before the limit ends the wait.
    await request(service, "k8s-pull", image="registry.example/missing:1", pending_timeout_seconds=4)
    doc: RunDocument = await eventually(lambda: finished(store, "k8s-pull"))

    assert doc.state == RunState.TIMED_OUT
    assert doc.reason is not None and doc.reason.startswith("pending longer than 4s: ImagePullBackOff")
    assert kube.objects("jobs", NS) == [] and kube.objects("pods", NS) == []


async def _in_state(store: MongoStateStore, run_id: str, state: RunState) -> bool:
    doc = await store.get(RunDocument, run_id)
    return doc is not None and doc.state == state


async def test_platform_failures_end_or_retry_the_run_never_leave_it_running(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    retry = RetryPolicy(limit=1, backoff_seconds=0.1).model_dump()
    plan(kube, "k8s-evict", "evict,succeed")
    plan(kube, "k8s-node", "node-lost,succeed")
    plan(kube, "k8s-deleted", "hang")
    await request(service, "k8s-evict", retry=retry)
    await request(service, "k8s-node", retry=retry)
    await request(service, "k8s-deleted")
    await eventually(lambda: _in_state(store, "k8s-deleted", RunState.RUNNING))
    [pod] = await kube.wait_for(lambda: _pods_of(kube, "k8s-deleted"))
    async with kube.api_client() as api:
        # Someone deletes the pod behind our back: the run must not stay running.
        await CoreV1Api(api).delete_namespaced_pod(pod["metadata"]["name"], NS)

    evicted: RunDocument = await eventually(lambda: finished(store, "k8s-evict"))
    lost: RunDocument = await eventually(lambda: finished(store, "k8s-node"))
    deleted: RunDocument = await eventually(lambda: finished(store, "k8s-deleted"))

    assert (evicted.state, evicted.attempt) == (RunState.SUCCEEDED, 2)
    assert evicted.history[3].reason is not None and "evicted" in evicted.history[3].reason
    assert (lost.state, lost.attempt) == (RunState.SUCCEEDED, 2)
    # Seen while terminating ("deleted before it finished") or after ("gone"): failed either way, with why.
    assert deleted.state == RunState.FAILED and deleted.reason is not None
    assert "deleted before it finished" in deleted.reason or "gone" in deleted.reason


async def test_a_restarted_service_finishes_a_run_that_ended_while_it_was_down(
    settings: Settings, endpoints: Endpoints, store: MongoStateStore, kube: FakeKubeServer, service: HandlerService
) -> None:
    plan(kube, "k8s-restart", "hang")
    await request(service, "k8s-restart")
    await eventually(lambda: _in_state(store, "k8s-restart", RunState.RUNNING))
    [pod] = await kube.wait_for(
        lambda: [p for p in _pods_of(kube, "k8s-restart") if p["status"].get("phase") == "Running"]
    )
    await service.stop()
    assert kube.controller is not None
    await kube.controller.finish(NS, pod["metadata"]["name"], exit_code=0)
    await kube.wait_for(
        lambda: (kube.get("jobs", m.job_name("k8s-restart", 1), NS) or {}).get("status", {}).get("succeeded")
    )

    again = HandlerService(on_kubernetes(settings, kube), endpoints, groups=["jobs"])
    await again.start()
    try:
        doc: RunDocument = await eventually(lambda: finished(store, "k8s-restart"))
    finally:
        await again.stop()
    assert doc.state == RunState.SUCCEEDED


async def _published(store: MongoStateStore, run_id: str) -> ResultDocument | None:
    doc = await store.get(ResultDocument, run_id)
    return doc if doc is not None and doc.state == ResultState.PUBLISHED else None


def _pods_of(kube: FakeKubeServer, run_id: str) -> list[dict[str, Any]]:
    label = m.run_label(run_id)
    return [p for p in kube.objects("pods", NS) if p["metadata"]["labels"].get(m.RUN_LABEL) == label]


async def _gone(kube: FakeKubeServer, kind: str) -> bool:
    return not kube.objects(kind, NS)
