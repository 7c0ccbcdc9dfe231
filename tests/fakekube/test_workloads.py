"""The fake controller: Deployments become ready, Jobs' pods play their scenario to the end a real
cluster would reach, logs stream, and tests steer pods that the code under test created."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient, ApiException, AppsV1Api, BatchV1Api, CoreV1Api

from fakekube import FakeKubeServer
from tests.fakekube.conftest import NAMESPACE, deployment, job


def _pods(kube: FakeKubeServer, job_name: str) -> list[dict[str, Any]]:
    return [p for p in kube.objects("pods", NAMESPACE) if p["metadata"]["labels"].get("job-name") == job_name]


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for condition in (obj or {}).get("status", {}).get("conditions") or []:
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None


def _finished(kube: FakeKubeServer, name: str) -> dict[str, Any] | None:
    found = kube.get("jobs", name, NAMESPACE)
    return found if _condition(found, "Complete") or _condition(found, "Failed") else None


def _state(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"])


async def test_a_deployment_becomes_ready(api: ApiClient, kube: FakeKubeServer) -> None:
    apps = AppsV1Api(api)
    await apps.create_namespaced_deployment(NAMESPACE, deployment("workflow-api", replicas=2))

    ready = await kube.wait_for(lambda: _condition(kube.get("deployments", "workflow-api", NAMESPACE), "Available"))
    read = await apps.read_namespaced_deployment_status("workflow-api", NAMESPACE)

    assert ready["reason"] == "MinimumReplicasAvailable"
    assert read.status.ready_replicas == read.status.available_replicas == 2
    assert read.status.observed_generation == read.metadata.generation
    [replica_set] = kube.objects("replicasets", NAMESPACE)
    assert replica_set["metadata"]["ownerReferences"][0]["uid"] == read.metadata.uid
    pods = kube.objects("pods", NAMESPACE)
    assert len(pods) == 2
    assert {p["metadata"]["ownerReferences"][0]["name"] for p in pods} == {replica_set["metadata"]["name"]}
    assert all(p["status"]["phase"] == "Running" and p["spec"]["nodeName"] for p in pods)


async def test_a_deployment_whose_image_cannot_be_pulled_times_out_progressing(
    api: ApiClient, kube: FakeKubeServer
) -> None:
    body = deployment("broken", annotations={"fakekube.io/scenario": "image-pull-backoff"})
    body["spec"]["progressDeadlineSeconds"] = 2  # the controller's time scale makes it 0.1 s
    await AppsV1Api(api).create_namespaced_deployment(NAMESPACE, body)

    def timed_out() -> bool:
        found = kube.get("deployments", "broken", NAMESPACE) or {}
        return any(c["reason"] == "ProgressDeadlineExceeded" for c in found.get("status", {}).get("conditions", []))

    def backing_off() -> list[dict[str, Any]]:
        pods = kube.objects("pods", NAMESPACE)
        return [p for p in pods if "ImagePullBackOff" in json.dumps(p["status"].get("containerStatuses"))]

    [pod] = await kube.wait_for(backing_off)
    await kube.wait_for(timed_out)
    assert pod["status"]["phase"] == "Pending"
    assert _condition(kube.get("deployments", "broken", NAMESPACE), "Available") is None


async def test_a_deployment_over_quota_reports_replica_failure(api: ApiClient, kube: FakeKubeServer) -> None:
    await CoreV1Api(api).create_namespaced_resource_quota(
        NAMESPACE, {"metadata": {"name": "few"}, "spec": {"hard": {"pods": "1"}}}
    )
    await AppsV1Api(api).create_namespaced_deployment(NAMESPACE, deployment("wide", replicas=2))

    failure = await kube.wait_for(lambda: _condition(kube.get("deployments", "wide", NAMESPACE), "ReplicaFailure"))

    assert failure["reason"] == "FailedCreate" and "exceeded quota: few" in failure["message"]
    assert len(kube.objects("pods", NAMESPACE)) == 1


async def test_a_job_pod_is_labelled_owned_and_succeeds(api: ApiClient, kube: FakeKubeServer) -> None:
    created = await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("ok"))

    done = await kube.wait_for(lambda: _finished(kube, "ok"))

    [pod] = _pods(kube, "ok")
    labels = pod["metadata"]["labels"]
    assert labels["controller-uid"] == labels["batch.kubernetes.io/controller-uid"] == created.metadata.uid
    assert labels["batch.kubernetes.io/job-name"] == "ok"
    [owner] = pod["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("Job", created.metadata.uid, True)
    assert pod["status"]["phase"] == "Succeeded"
    assert _state(pod)["terminated"]["exitCode"] == 0 and _state(pod)["terminated"]["reason"] == "Completed"
    assert _condition(done, "Complete") and done["status"]["succeeded"] == 1 and done["status"]["completionTime"]


@pytest.mark.parametrize(
    ("scenario", "reason", "exit_code", "pod_reason"),
    [
        ("fail:3", "Error", 3, None),
        ("oomkill", "OOMKilled", 137, None),
        ("evict", "ContainerStatusUnknown", 137, "Evicted"),
    ],
)
async def test_a_failing_pod_fails_its_job(
    api: ApiClient, kube: FakeKubeServer, scenario: str, reason: str, exit_code: int, pod_reason: str | None
) -> None:
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("bad", {"fakekube.io/scenario": scenario}))

    done = await kube.wait_for(lambda: _finished(kube, "bad"))

    [pod] = _pods(kube, "bad")
    assert pod["status"]["phase"] == "Failed" and pod["status"].get("reason") == pod_reason
    assert _state(pod)["terminated"]["exitCode"] == exit_code and _state(pod)["terminated"]["reason"] == reason
    failed = _condition(done, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded" and done["status"]["failed"] == 1


async def test_retries_follow_the_backoff_limit_and_the_scenario_sequence(api: ApiClient, kube: FakeKubeServer) -> None:
    annotations = {"fakekube.io/scenario": "oomkill,fail:2,succeed"}
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("retry", annotations, backoffLimit=2))

    done = await kube.wait_for(lambda: _finished(kube, "retry"))

    assert _condition(done, "Complete") and done["status"]["failed"] == 2 and done["status"]["succeeded"] == 1
    ends = sorted(
        (p["metadata"]["annotations"]["fakekube.io/attempt"], p["status"]["phase"]) for p in _pods(kube, "retry")
    )
    assert ends == [("0", "Failed"), ("1", "Failed"), ("2", "Succeeded")]


async def test_a_lost_node_deletes_the_pod_and_fails_the_job(api: ApiClient, kube: FakeKubeServer) -> None:
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("lost", {"fakekube.io/scenario": "node-lost"}))

    done = await kube.wait_for(lambda: _finished(kube, "lost"))
    await kube.wait_for(lambda: not _pods(kube, "lost"))  # a replacement made while the first was terminating

    assert _condition(done, "Failed") and done["status"]["failed"] >= 1


async def test_a_lost_node_can_leave_the_pod_unknown(api: ApiClient, kube: FakeKubeServer) -> None:
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("gone", {"fakekube.io/scenario": "node-lost:unknown"}))

    [pod] = await kube.wait_for(lambda: [p for p in _pods(kube, "gone") if p["status"]["phase"] == "Unknown"])

    assert pod["status"]["reason"] == "NodeLost"


@pytest.mark.parametrize("scenario", ["image-pull-backoff", "unschedulable"])
async def test_a_pod_that_cannot_start_stays_pending(api: ApiClient, kube: FakeKubeServer, scenario: str) -> None:
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("stuck", {"fakekube.io/scenario": scenario}))

    def stuck() -> list[dict[str, Any]]:
        pods = _pods(kube, "stuck")
        if scenario == "unschedulable":
            return [
                p for p in pods if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))
            ]
        return [p for p in pods if p["status"].get("containerStatuses") and "ImagePullBackOff" in json.dumps(_state(p))]

    [pod] = await kube.wait_for(stuck)

    assert pod["status"]["phase"] == "Pending"
    if scenario == "unschedulable":
        [scheduled] = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
        assert scheduled["status"] == "False" and "nodes are available" in scheduled["message"]
        assert "nodeName" not in pod["spec"]
    job_now = kube.get("jobs", "stuck", NAMESPACE)
    assert job_now is not None and job_now["status"]["active"] == 1 and not _finished(kube, "stuck")


async def test_a_job_past_its_deadline_fails_and_its_pod_goes(api: ApiClient, kube: FakeKubeServer) -> None:
    body = job("slow", {"fakekube.io/scenario": "hang"}, activeDeadlineSeconds=2)  # 0.1 s at the time scale
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, body)

    done = await kube.wait_for(lambda: _finished(kube, "slow"))
    await kube.wait_for(lambda: not _pods(kube, "slow"))

    failed = _condition(done, "Failed")
    assert failed is not None and failed["reason"] == "DeadlineExceeded"


async def test_a_plan_steers_pods_the_test_did_not_annotate(api: ApiClient, kube: FakeKubeServer) -> None:
    assert kube.controller is not None
    kube.controller.plan("oomkill", labels={"job-name": "planned"})
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("planned"))

    await kube.wait_for(lambda: _finished(kube, "planned"))

    [pod] = _pods(kube, "planned")
    assert _state(pod)["terminated"]["reason"] == "OOMKilled"


async def test_a_running_pod_is_evicted_when_the_test_says_so(api: ApiClient, kube: FakeKubeServer) -> None:
    assert kube.controller is not None
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("victim", {"fakekube.io/scenario": "hang"}))
    [pod] = await kube.wait_for(lambda: [p for p in _pods(kube, "victim") if p["status"]["phase"] == "Running"])

    await kube.controller.evict(NAMESPACE, pod["metadata"]["name"])
    done = await kube.wait_for(lambda: _finished(kube, "victim"))

    evicted = kube.get("pods", pod["metadata"]["name"], NAMESPACE)
    assert evicted is not None and evicted["status"]["reason"] == "Evicted" and _condition(done, "Failed")


async def test_logs_are_refused_while_pending_and_follow_until_the_container_ends(
    api: ApiClient, kube: FakeKubeServer
) -> None:
    core = CoreV1Api(api)
    printing = {
        "fakekube.io/log": "line 1\nline 2\nline 3",
        "fakekube.io/duration": "0.3",
        "fakekube.io/pending": "0.3",
    }
    await BatchV1Api(api).create_namespaced_job(NAMESPACE, job("talk", printing))
    [pod] = await kube.wait_for(lambda: _pods(kube, "talk"))
    name = pod["metadata"]["name"]

    await kube.wait_for(lambda: (kube.get("pods", name, NAMESPACE) or {}).get("status", {}).get("containerStatuses"))
    with pytest.raises(ApiException) as waiting:
        await core.read_namespaced_pod_log(name, NAMESPACE)
    await kube.wait_for(lambda: (kube.get("pods", name, NAMESPACE) or {})["status"]["phase"] == "Running")
    response = await core.read_namespaced_pod_log(name, NAMESPACE, follow=True, _preload_content=False)
    followed = [line async for line in response.content]
    after = await core.read_namespaced_pod_log(name, NAMESPACE, tail_lines=1)

    assert waiting.value.status == 400 and "is waiting to start: ContainerCreating" in waiting.value.body
    assert b"".join(followed) == b"line 1\nline 2\nline 3\n"
    assert after == "line 3\n"
    assert (kube.get("pods", name, NAMESPACE) or {})["status"]["phase"] == "Succeeded"


async def test_gpu_pods_land_on_a_gpu_node_and_too_many_gpus_fit_nowhere(api: ApiClient, kube: FakeKubeServer) -> None:
    core = CoreV1Api(api)

    def pod(name: str, gpus: int) -> dict[str, Any]:
        resources = {"limits": {"nvidia.com/gpu": str(gpus)}}
        container = {"name": "main", "image": "carla:0.9", "resources": resources}
        return {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [container]}}

    await core.create_namespaced_pod(NAMESPACE, pod("one-gpu", 1))
    await core.create_namespaced_pod(NAMESPACE, pod("eight-gpus", 8))

    placed = await kube.wait_for(lambda: (kube.get("pods", "one-gpu", NAMESPACE) or {})["spec"].get("nodeName"))
    refused = await kube.wait_for(lambda: (kube.get("pods", "eight-gpus", NAMESPACE) or {})["status"].get("conditions"))

    assert placed == "fakekube-gpu"
    assert refused[0]["reason"] == "Unschedulable" and "Insufficient nvidia.com/gpu" in refused[0]["message"]
