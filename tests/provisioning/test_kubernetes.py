"""Provisioning on a Kubernetes site: the fake API server driven over HTTP, every object validated strictly."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from events import subjects as s
from events.envelope import new_event
from events.payloads.edc import EdcProvisionRequested
from fakekube import FakeKubeServer
from schemas.provisioning import DeploymentDocument
from tests.backbone.conftest import quiet, stream_events
from tests.provisioning.conftest import StartProvider

KINDS = [
    "Namespace",
    "ServiceAccount",
    "ResourceQuota",
    "LimitRange",
    "NetworkPolicy",
    "Secret",
    "Deployment",
    "Service",
]
# What the controllers make of the Deployment, with its labels.
CONTROLLED = {"ReplicaSet", "Pod"}


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeServer]:
    async with FakeKubeServer(validate="1.33.0") as server:
        yield server


def sites_file(tmp_path: Path, kube: FakeKubeServer) -> Path:
    path = tmp_path / "sites.yaml"
    site = {
        "name": "cloud",
        "backend": "kubernetes",
        "kubernetes": {"kubeconfig": str(kube.kubeconfig_path), "context": "fakekube"},
        "capabilities": {"cpu": 8, "memory": "16Gi"},
    }
    path.write_text(json.dumps({"sites": [site]}))
    return path


def ours(kube: FakeKubeServer, namespace: str) -> Counter[str]:
    """What we created there (not the defaults the cluster adds, nor the controllers' ReplicaSets and Pods)."""
    objects = [*kube.namespaced_objects(namespace), kube.get("Namespace", namespace) or {"metadata": {}}]
    managed = [o for o in objects if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "gxwf"]
    return Counter(obj["kind"] for obj in managed if obj["kind"] not in CONTROLLED)


async def test_provision_on_kubernetes_and_back(
    start_provider: StartProvider, kube: FakeKubeServer, js: JetStreamContext, tmp_path: Path
) -> None:
    provider = await start_provider("0.18", sites_file=sites_file(tmp_path, kube))
    transfer = await provider.begin()
    doc = await provider.reaches(transfer.id, "granted")
    namespace = f"gxwf-{doc.deployment_id}"

    deployment = await provider.store.get(DeploymentDocument, doc.deployment_id or "")
    assert deployment is not None and (deployment.site, deployment.backend) == ("cloud", "kubernetes")
    url = f"http://workflow-api.{namespace}.svc:8080"
    assert deployment.workflow_api_url == url
    (callback,) = provider.callbacks(transfer.id, "provision")
    assert callback.body["dataAddress"]["properties"]["baseUrl"] == url  # type: ignore[attr-defined]
    created = ours(kube, namespace)
    # Exactly these: the WorkflowApi has no use for the Kubernetes API, so no Role or RoleBinding is made for it.
    assert created == Counter(KINDS), created
    labels = kube.get("Namespace", namespace)["metadata"]["labels"]  # type: ignore[index]
    assert {"gxwf.io/consumer", "gxwf.io/transfer"} <= set(labels)
    # What deploy/kustomize/base/admission-policy.yaml requires before the handlers may write in a namespace.
    assert "gaiax-workflows.io/consumer" in labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    # A copy of the request after JetStream's duplicate window, and the handler's apply again: nothing new.
    original = (await stream_events(js, s.EDC_PROVISION_REQUESTED))[0]
    assert provider.handlers.bus is not None
    late = EdcProvisionRequested.model_validate(original["data"])
    await provider.handlers.bus.publish(new_event(s.EDC_PROVISION_REQUESTED, late, subject=transfer.id))
    await provider.sim.send_provisioner_request(transfer, "provision")
    await quiet(js)
    assert ours(kube, namespace) == created
    assert kube.calls["patch", "deployments.apps"] == 1

    await provider.deprovision(transfer)
    await provider.reaches(transfer.id, "deprovisioned")
    assert kube.get("Namespace", namespace) is None and kube.namespaced_objects(namespace) == []
    deleted = await provider.store.get(DeploymentDocument, doc.deployment_id or "")
    assert deleted is not None and deleted.state == "deleted"


async def test_a_workflow_api_that_never_becomes_ready_fails_and_is_removed(
    start_provider: StartProvider, kube: FakeKubeServer, tmp_path: Path
) -> None:
    assert kube.controller is not None
    kube.controller.plan("not-ready", labels={"app.kubernetes.io/name": "workflow-api"})
    provider = await start_provider(sites_file=sites_file(tmp_path, kube), deploy_timeout_seconds=1.0)
    transfer = await provider.begin()
    doc = await provider.reaches(transfer.id, "failed")
    assert doc.failed_step == "deployment" and doc.reason == "not ready within 1s on site cloud"
    assert await provider.sim.ledger.wait_for(transfer.id, "deprovision", 10) is not None
    namespace = f"gxwf-{doc.deployment_id}"
    await kube.wait_for(lambda: kube.get("Namespace", namespace) is None, timeout=10)
    assert kube.namespaced_objects(namespace) == []


async def test_a_workflow_api_no_node_can_take_fails_with_the_schedulers_reason(
    start_provider: StartProvider, kube: FakeKubeServer, tmp_path: Path
) -> None:
    assert kube.controller is not None
    kube.controller.plan("unschedulable", labels={"app.kubernetes.io/name": "workflow-api"})
    provider = await start_provider(sites_file=sites_file(tmp_path, kube))
    transfer = await provider.begin()
    doc = await provider.reaches(transfer.id, "failed")
    assert doc.failed_step == "deployment" and (doc.reason or "").startswith("WorkflowApi pod unschedulable: ")
