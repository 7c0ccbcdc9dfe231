"""Deletion as the garbage collector and namespace controller carry it out: foreground, orphan, cascade."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, ApiException, BatchV1Api, CoreV1Api

from fakekube import FakeKubeServer
from tests.fakekube.conftest import NAMESPACE, deployment, job


async def _deletions(func: Any, since: str, expected: int) -> list[tuple[str, int]]:
    """(name, resourceVersion) of the first `expected` DELETED events after `since`."""
    found: list[tuple[str, int]] = []
    watcher = watch.Watch()
    async with watcher.stream(func, NAMESPACE, resource_version=since, timeout_seconds=10) as stream:
        async for event in stream:
            if event["type"] == "DELETED":
                found.append((event["object"].metadata.name, int(event["object"].metadata.resource_version)))
                if len(found) == expected:
                    watcher.stop()
    return found


def _running_pods(kube: FakeKubeServer, run: str) -> list[dict[str, Any]]:
    pods = [p for p in kube.objects("pods", NAMESPACE) if p["metadata"]["labels"].get("job-name") == run]
    return [p for p in pods if p.get("status", {}).get("phase") == "Running"]


async def test_foreground_delete_of_a_job_removes_its_pods_before_the_job(api: ApiClient, kube: FakeKubeServer) -> None:
    core, batch = CoreV1Api(api), BatchV1Api(api)
    slow_stop = {"fakekube.io/scenario": "hang", "fakekube.io/terminate-after": "0.3"}
    await batch.create_namespaced_job(NAMESPACE, job("stop-me", slow_stop))
    await kube.wait_for(lambda: _running_pods(kube, "stop-me"))
    since = str(kube.api.store.resource_version)

    pods = asyncio.create_task(_deletions(core.list_namespaced_pod, since, 1))
    jobs = asyncio.create_task(_deletions(batch.list_namespaced_job, since, 1))
    await asyncio.sleep(0.05)
    await batch.delete_namespaced_job("stop-me", NAMESPACE, propagation_policy="Foreground")
    pending = await batch.read_namespaced_job("stop-me", NAMESPACE)
    [(_, pod_gone)], [(_, job_gone)] = await asyncio.gather(pods, jobs)

    assert pending.metadata.deletion_timestamp is not None
    assert "foregroundDeletion" in pending.metadata.finalizers
    assert pod_gone < job_gone
    assert kube.objects("pods", NAMESPACE) == [] and kube.objects("jobs", NAMESPACE) == []


async def test_a_deleted_running_pod_terminates_with_sigterm_before_it_goes(
    api: ApiClient, kube: FakeKubeServer
) -> None:
    core = CoreV1Api(api)
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("term", {"fakekube.io/scenario": "hang"}))
    [pod] = await kube.wait_for(lambda: _running_pods(kube, "term"))
    name = pod["metadata"]["name"]

    answer = await core.delete_namespaced_pod(name, NAMESPACE)
    await kube.wait_for(lambda: kube.get("pods", name, NAMESPACE) is None)

    assert answer.metadata.deletion_timestamp is not None  # graceful: the kubelet confirms it
    history = kube.api.objects["v1/pods", NAMESPACE, name].history
    last = history[-2]
    assert last is not None
    assert last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143


async def test_deleting_a_job_without_a_policy_orphans_its_pods(api: ApiClient, kube: FakeKubeServer) -> None:
    batch = BatchV1Api(api)
    await batch.create_namespaced_job(NAMESPACE, job("orphaning"))
    await kube.wait_for(lambda: kube.objects("pods", NAMESPACE))

    await batch.delete_namespaced_job("orphaning", NAMESPACE)
    await kube.settled()

    [pod] = kube.objects("pods", NAMESPACE)
    assert "ownerReferences" not in pod["metadata"]


async def test_background_delete_of_a_deployment_collects_replica_sets_and_pods(
    api: ApiClient, kube: FakeKubeServer
) -> None:
    from kubernetes_asyncio.client import AppsV1Api

    apps = AppsV1Api(api)
    await apps.create_namespaced_deployment(NAMESPACE, deployment("web", replicas=2))
    await kube.wait_for(lambda: len(_ready_pods(kube)) == 2)

    await apps.delete_namespaced_deployment("web", NAMESPACE, propagation_policy="Background")
    await kube.wait_for(lambda: not kube.objects("pods", NAMESPACE) and not kube.objects("replicasets", NAMESPACE))


def _ready_pods(kube: FakeKubeServer) -> list[dict[str, Any]]:
    return [
        p
        for p in kube.objects("pods", NAMESPACE)
        if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
    ]


async def test_deleting_a_namespace_removes_everything_in_it(api: ApiClient, kube: FakeKubeServer) -> None:
    from kubernetes_asyncio.client import AppsV1Api

    core = CoreV1Api(api)
    await AppsV1Api(api).create_namespaced_deployment(NAMESPACE, deployment("web"))
    slow_stop = {"fakekube.io/scenario": "hang", "fakekube.io/terminate-after": "0.3"}  # keeps it Terminating
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("busy", slow_stop))
    await core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "token"}, "stringData": {"t": "x"}})
    await kube.wait_for(lambda: len(_ready_pods(kube)) == 2)

    await core.delete_namespace(NAMESPACE)
    terminating = await core.read_namespace(NAMESPACE)
    with pytest.raises(ApiException) as refused:
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "late"}})
    await kube.wait_for(lambda: kube.get("namespaces", NAMESPACE) is None)

    assert terminating.status.phase == "Terminating"
    assert refused.value.status == 403 and "is being terminated" in refused.value.body
    assert kube.namespaced_objects(NAMESPACE) == []


async def test_a_pod_whose_kubelet_never_confirms_keeps_a_foreground_delete_pending(
    api: ApiClient, kube: FakeKubeServer
) -> None:
    batch = BatchV1Api(api)
    stuck = {"fakekube.io/scenario": "hang", "fakekube.io/terminate-after": "never"}
    await batch.create_namespaced_job(NAMESPACE, job("unstoppable", stuck))
    [pod] = await kube.wait_for(lambda: _running_pods(kube, "unstoppable"))

    await batch.delete_namespaced_job("unstoppable", NAMESPACE, propagation_policy="Foreground")
    await asyncio.sleep(0.3)
    await kube.settled()

    terminating = kube.get("pods", pod["metadata"]["name"], NAMESPACE)
    pending = kube.get("jobs", "unstoppable", NAMESPACE)
    assert terminating is not None and terminating["metadata"]["deletionTimestamp"]
    assert pending is not None and pending["metadata"]["finalizers"] == ["foregroundDeletion"]
