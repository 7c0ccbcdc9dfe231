"""A consumer's runs namespace on Kubernetes: fenced in by the site's consumer quota and a deny-ingress policy,
and removed with everything in it once the consumer has no live transfer and its results are published."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from nats.js import JetStreamContext

from adapters.kubernetes_compute import manifests as m
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.consumer import ConsumerDeprovisioned
from events.payloads.run import RunRequested, RunSpec, RunStopRequested
from fakekube import FakeKubeServer, Scenario
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.provisioning import ProvisionDocument, ProvisionState, ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, quiet, stream_events
from tests.backbone.kube import kube_service

CONSUMER = "did:web:consumer.example:fenced"
NS = m.namespace_name(CONSUMER)
# No gpu key: the fake API (unlike a real one) makes pods name every resource a quota lists, extended ones too.
QUOTA = {"cpu": 2, "memory": "4Gi", "runs": 3}


@pytest_asyncio.fixture
async def service(
    settings: Settings,
    endpoints: Endpoints,
    js: JetStreamContext,
    store: MongoStateStore,
    kube: FakeKubeServer,
    tmp_path: Path,
) -> AsyncIterator[HandlerService]:
    sites = tmp_path / "sites.yaml"
    site = {
        "name": "kubernetes",
        "backend": "kubernetes",
        "kubernetes": {"kubeconfig": str(kube.kubeconfig_path), "context": "fakekube"},
        "capabilities": {"cpu": 16, "memory": "64Gi"},
        "consumer_quota": QUOTA,
    }
    sites.write_text(json.dumps({"sites": [site]}))
    svc = await kube_service(settings, endpoints, kube, ["jobs", "results"], sites_file=sites)
    yield svc
    await svc.stop()


async def start_run(service: HandlerService, kube: FakeKubeServer, run_id: str, scenario: Scenario) -> None:
    assert service.bus is not None and kube.controller is not None
    kube.controller.plan(scenario, labels={m.RUN_LABEL: m.run_label(run_id)})
    spec = RunSpec(image="busybox:1.36", command=["sh", "-c", "echo hi"], cpu=1, memory_mb=512)
    request = RunRequested(run_id=run_id, consumer_id=CONSUMER, asset_id="shell-count", spec=spec)
    await service.bus.publish(new_event(s.RUN_REQUESTED, request))


async def published(store: MongoStateStore, run_id: str) -> ResultDocument | None:
    doc = await store.get(ResultDocument, run_id)
    return doc if doc is not None and doc.state == ResultState.PUBLISHED else None


async def ended_transfer(store: MongoStateStore, tp: str) -> None:
    """The consumer's only transfer, deprovisioned (what the provisioning handlers leave behind)."""
    doc = ProvisionDocument(id=tp, state=ProvisionState.REQUESTED, connector="default", consumer_id=CONSUMER)
    await store.create(doc, event_id="test-requested")
    for state in (ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED):
        assert (await store.transition(ProvisionDocument, tp, state, event_id="test-teardown")).changed


def deprovisioned(tp: str) -> ConsumerDeprovisioned:
    return ConsumerDeprovisioned(transfer_process_id=tp, consumer_id=CONSUMER, reason="transfer completed")


async def test_the_runs_namespace_carries_the_consumer_quota_and_admits_no_ingress(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    await start_run(service, kube, "fenced-1", Scenario("succeed", log="ok"))
    doc = await eventually(lambda: finished(store, "fenced-1"))
    assert doc.state == RunState.SUCCEEDED

    (quota,) = kube.objects("resourcequotas", NS)
    assert quota["spec"]["hard"] == {
        "requests.cpu": "2000m",
        "limits.cpu": "2000m",
        "requests.memory": "4Gi",
        "limits.memory": "4Gi",
        "pods": "3",
        "requests.ephemeral-storage": "50Gi",
        "limits.ephemeral-storage": "50Gi",
    }
    (limits,) = kube.objects("limitranges", NS)
    assert limits["spec"]["limits"][0]["default"] == {"cpu": "1000m", "memory": "1024Mi", "ephemeral-storage": "2048Mi"}
    policies = {p["metadata"]["name"]: p["spec"] for p in kube.objects("networkpolicies", NS)}
    assert policies["runs-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}, "nothing may connect in"
    assert policies["runs-egress"]["policyTypes"] == ["Egress"]


async def test_the_consumers_last_deprovisioning_removes_its_runs_namespace_after_its_results(
    service: HandlerService, store: MongoStateStore, kube: FakeKubeServer, js: JetStreamContext
) -> None:
    assert service.bus is not None and service.kubernetes_compute is not None
    await start_run(service, kube, "fenced-done", Scenario("succeed", log="frame 1"))
    await start_run(service, kube, "fenced-long", Scenario("succeed", duration=600, log="still going"))

    async def running(run_id: str) -> bool:
        doc = await store.get(RunDocument, run_id)
        return doc is not None and doc.state == RunState.RUNNING

    await eventually(lambda: published(store, "fenced-done"))
    await eventually(lambda: running("fenced-long"))
    # The transfer ended while a run still runs: nothing is removed under it...
    await ended_transfer(store, "tp-fenced")
    await service.bus.publish(new_event(s.CONSUMER_DEPROVISIONED, deprovisioned("tp-fenced")))
    await quiet(js)
    assert kube.get("Namespace", NS) is not None
    # ...until it has ended (the provisioning asks the stop) and its results, log included, are published.
    await service.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="fenced-long", consumer_id=CONSUMER))
    )
    await eventually(lambda: published(store, "fenced-long"))

    async def released() -> list[dict[str, object]]:
        return await stream_events(js, s.CONSUMER_RELEASED, wait=False)

    (event,) = await eventually(released, timeout=30)
    assert event["data"] == {
        "consumer_id": CONSUMER,
        "transfer_process_id": "tp-fenced",
        "site": "kubernetes",
        "runs": 2,
    }
    assert kube.get("Namespace", NS) is None
    assert kube.namespaced_objects(NS) == []
    log_dir = service.settings.state_dir / "kubernetes-logs"
    assert not list(log_dir.glob("*.txt")), "the saved logs went with the namespace"
    # Results stay in the object store.
    done = await published(store, "fenced-done")
    assert done is not None and done.log_key is not None
    assert await service.objects.get_bytes(done.log_key) == b"frame 1\n"
