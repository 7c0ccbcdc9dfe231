"""The Kubernetes backend against the fake API over HTTP, its controller playing each pod's scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.kubernetes_compute import KubernetesJobBackend
from adapters.kubernetes_compute import manifests as m
from fakekube import FakeKubeServer, Scenario
from ports.compute import WorkloadPhase, WorkloadStatus
from tests.adapters.kubernetes.conftest import OWNER, spec, status_until

NS = m.namespace_name(OWNER.consumer_id)


def _plan(kube: FakeKubeServer, run_id: str, scenarios: str) -> None:
    assert kube.controller is not None
    kube.controller.plan(scenarios, labels={m.RUN_LABEL: m.run_label(run_id)})


def _pods(kube: FakeKubeServer, run_id: str) -> list[dict[str, Any]]:
    label = m.run_label(run_id)
    return [p for p in kube.objects("pods", NS) if p["metadata"]["labels"].get(m.RUN_LABEL) == label]


def _exited(status: WorkloadStatus) -> bool:
    return status.phase is not WorkloadPhase.RUNNING


async def test_start_creates_namespace_account_and_job_once(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    _plan(kube, "r-once", "hang")
    handle = await backend.start("r-once", spec(), {"SPEED": "3"}, attempt=1, owner=OWNER)
    again = await backend.start("r-once", spec(), {"SPEED": "3"}, attempt=1, owner=OWNER)
    restarted = await KubernetesJobBackend.from_kubeconfig(kube.kubeconfig_path)
    try:
        after_restart = await restarted.start("r-once", spec(), {"SPEED": "3"}, attempt=1, owner=OWNER)
    finally:
        await restarted.close()

    assert handle == again == after_restart == f"{NS}/{m.job_name('r-once', 1)}"
    assert kube.calls["create", "namespaces"] == 1
    assert kube.calls["create", "serviceaccounts"] == 1
    assert kube.calls["create", "jobs.batch"] == 1
    [namespace] = [n for n in kube.objects("namespaces") if n["metadata"]["name"] == NS]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert m.CONSUMER_LABEL in namespace["metadata"]["labels"]
    account = kube.get("serviceaccounts", m.SERVICE_ACCOUNT, NS)
    assert account is not None and account["automountServiceAccountToken"] is False
    assert kube.objects("rolebindings", NS) == []  # the account holds no API rights
    [job] = kube.objects("jobs", NS)
    assert job["spec"]["backoffLimit"] == 0
    [pod] = await kube.wait_for(lambda: _pods(kube, "r-once"))
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["SPEED"] == "3" and env["GXWF_ATTEMPT"] == "1"


async def test_a_second_attempt_is_a_job_of_its_own(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    first = await backend.start("r-two", spec(), {}, attempt=1, owner=OWNER)
    second = await backend.start("r-two", spec(), {}, attempt=2, owner=OWNER)

    assert first != second and second.endswith("-2")
    assert kube.calls["create", "jobs.batch"] == 2 and kube.calls["create", "namespaces"] == 1


async def test_a_job_that_completes_exits_zero(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    await backend.start("r-ok", spec(), {}, owner=OWNER)
    status = await status_until(backend, "r-ok", _exited)
    assert status == WorkloadStatus(WorkloadPhase.EXITED, 0)

    kube.reset_calls()
    await backend.start("r-ok", spec(), {}, owner=OWNER)  # a redelivered start: one read, nothing created
    assert sum(kube.calls.values()) == 1 and kube.calls["get", "jobs.batch"] == 1
    kube.reset_calls()
    await backend.status("r-ok")  # what each watcher pass costs for a finished run: the Job alone, or nothing
    assert kube.calls["get", "jobs.batch"] + kube.calls["list", "pods"] <= 1


async def test_a_failing_container_exits_with_its_code(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    _plan(kube, "r-fail", "fail:3")
    await backend.start("r-fail", spec(), {}, owner=OWNER)
    status = await status_until(backend, "r-fail", _exited)
    assert (status.phase, status.exit_code, status.failure) == (WorkloadPhase.EXITED, 3, "exit_code")


async def test_an_oom_killed_container_is_classified(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    _plan(kube, "r-oom", "oomkill")
    await backend.start("r-oom", spec(memory_mb=64), {}, owner=OWNER)
    status = await status_until(backend, "r-oom", _exited)
    assert (status.exit_code, status.failure) == (137, "oom_killed") and "OOMKilled" in (status.detail or "")


async def test_an_evicted_pod_is_classified(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    _plan(kube, "r-evict", "hang")
    await backend.start("r-evict", spec(), {}, owner=OWNER)
    [pod] = await kube.wait_for(lambda: [p for p in _pods(kube, "r-evict") if p["status"].get("phase") == "Running"])
    assert (await backend.status("r-evict")).phase is WorkloadPhase.RUNNING

    assert kube.controller is not None
    await kube.controller.evict(NS, pod["metadata"]["name"])
    status = await status_until(backend, "r-evict", _exited)
    assert status.failure == "evicted" and "low on resource" in (status.detail or "")


async def test_a_lost_node_is_classified_whether_the_pod_stays_or_goes(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    _plan(kube, "r-lost", "node-lost")
    _plan(kube, "r-unknown", "node-lost:unknown")
    await backend.start("r-lost", spec(), {}, owner=OWNER)
    await backend.start("r-unknown", spec(), {}, owner=OWNER)

    gone = await status_until(backend, "r-lost", _exited)
    unknown = await status_until(backend, "r-unknown", _exited)

    assert gone.phase is WorkloadPhase.EXITED and gone.failure in ("node_lost", "vanished")
    assert unknown.failure == "node_lost" and "node lost" in (unknown.detail or "")


async def test_a_pod_that_cannot_start_is_running_but_waiting_with_the_reason(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    _plan(kube, "r-pull", "image-pull-backoff")
    _plan(kube, "r-sched", "unschedulable")
    await backend.start("r-pull", spec(image="registry.example/missing:1"), {}, owner=OWNER)
    await backend.start("r-sched", spec(), {}, owner=OWNER)

    pull = await status_until(backend, "r-pull", lambda s: "ImagePullBackOff" in (s.detail or ""))
    sched = await status_until(backend, "r-sched", lambda s: s.detail is not None)

    assert pull.phase is WorkloadPhase.RUNNING and pull.waiting and "registry.example/missing:1" in (pull.detail or "")
    assert sched.phase is WorkloadPhase.RUNNING and sched.waiting and sched.detail.startswith("Unschedulable")


async def test_a_gpu_run_lands_on_a_gpu_node(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    _plan(kube, "r-gpu", "hang")
    await backend.start("r-gpu", spec(gpu_count=1, cpu=1, memory_mb=1024), {}, owner=OWNER)
    [pod] = await kube.wait_for(lambda: [p for p in _pods(kube, "r-gpu") if p["spec"].get("nodeName")])

    assert pod["spec"]["nodeName"] == "fakekube-gpu"
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


async def test_a_deleted_job_is_missing(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    assert (await backend.status("never-started")).phase is WorkloadPhase.MISSING
    await backend.start("r-del", spec(), {}, owner=OWNER)
    await backend.batch.delete_namespaced_job(m.job_name("r-del", 1), NS, propagation_policy="Background")

    status = await status_until(backend, "r-del", lambda s: s.phase is WorkloadPhase.MISSING)
    assert status.failure == "vanished"


async def test_stop_deletes_in_the_foreground_and_confirms_the_pods_are_gone(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    assert kube.controller is not None
    # Containers that take a while to stop: the stop has to wait for them, not just ask.
    kube.controller.plan(Scenario("hang", terminate_after=0.3), labels={m.RUN_LABEL: m.run_label("r-stop")})
    await backend.start("r-stop", spec(), {}, owner=OWNER)
    await kube.wait_for(lambda: [p for p in _pods(kube, "r-stop") if p["status"].get("phase") == "Running"])

    fresh = await KubernetesJobBackend.from_kubeconfig(kube.kubeconfig_path, poll_seconds=0.02)
    try:
        confirmed = await fresh.stop("r-stop")  # a restarted handler finds the run's namespace by its label
    finally:
        await fresh.close()

    assert confirmed is True
    assert _pods(kube, "r-stop") == []
    assert kube.calls["delete", "jobs.batch"] == 1
    assert (await backend.status("r-stop")).phase is WorkloadPhase.MISSING
    assert await backend.stop("r-stop") is True  # nothing left: a repeated stop confirms at once


async def test_a_stop_that_cannot_be_confirmed_says_so(kube: FakeKubeServer, backend: KubernetesJobBackend) -> None:
    assert kube.controller is not None
    kube.controller.plan(Scenario("hang", terminate_after=float("inf")), labels={m.RUN_LABEL: m.run_label("r-stuck")})
    await backend.start("r-stuck", spec(), {}, owner=OWNER)
    await kube.wait_for(lambda: [p for p in _pods(kube, "r-stuck") if p["status"].get("phase") == "Running"])
    backend.stop_timeout_seconds = 0.3

    assert await backend.stop("r-stuck") is False
    assert _pods(kube, "r-stuck")  # still terminating: the watcher finishes the run later
    job = kube.get("jobs", m.job_name("r-stuck", 1), NS)
    assert job is not None and "foregroundDeletion" in job["metadata"]["finalizers"]


async def test_a_new_attempt_ends_an_earlier_one_left_on_a_lost_node(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    _plan(kube, "r-partition", "node-lost:unknown,hang")
    await backend.start("r-partition", spec(), {}, attempt=1, owner=OWNER)
    lost = await status_until(backend, "r-partition", _exited)
    assert lost.failure == "node_lost"

    await backend.start("r-partition", spec(), {}, attempt=2, owner=OWNER)

    first = kube.get("jobs", m.job_name("r-partition", 1), NS)
    assert first is None or first["metadata"].get("deletionTimestamp")
    assert (await backend.status("r-partition", attempt=2)).phase is WorkloadPhase.RUNNING


async def test_a_job_refused_by_the_consumers_quota_waits_with_the_reason(
    kube: FakeKubeServer, backend: KubernetesJobBackend
) -> None:
    _plan(kube, "r-first", "hang")
    await backend.start("r-first", spec(), {}, owner=OWNER)
    await kube.wait_for(lambda: _pods(kube, "r-first"))
    quota: Any = {"metadata": {"name": "runs"}, "spec": {"hard": {"pods": "1"}}}
    await backend.core.create_namespaced_resource_quota(NS, quota)

    await backend.start("r-second", spec(), {}, owner=OWNER)
    status = await status_until(backend, "r-second", lambda s: s.detail is not None)

    assert status.phase is WorkloadPhase.RUNNING and status.waiting
    assert status.detail is not None and status.detail.startswith("FailedCreate") and "exceeded quota" in status.detail


async def test_watched_status_costs_no_call_and_survives_a_compacted_history(kube: FakeKubeServer) -> None:
    watching = await KubernetesJobBackend.from_kubeconfig(kube.kubeconfig_path, watch=True, watch_seconds=1)
    try:
        _plan(kube, "r-watched", "hang")
        await watching.start("r-watched", spec(), {}, owner=OWNER)
        await kube.wait_for(lambda: [p for p in _pods(kube, "r-watched") if p["status"].get("phase") == "Running"])
        await status_until(watching, "r-watched", lambda s: not s.waiting)
        kube.reset_calls()
        status = await watching.status("r-watched")
        assert status == WorkloadStatus(WorkloadPhase.RUNNING) and sum(kube.calls.values()) == 0

        assert watching.jobs is not None
        relists = watching.jobs.relists
        # Something the caches do not follow changes, the history is compacted: the next watch resumes from a
        # version that is gone (410), and the caches are listed afresh.
        unrelated: Any = {"metadata": {"name": "unrelated"}}
        await watching.core.create_namespaced_config_map(NS, unrelated)
        kube.compact()
        await kube.wait_for(lambda: watching.jobs is not None and watching.jobs.relists > relists, timeout=5)
        [pod] = _pods(kube, "r-watched")
        assert kube.controller is not None
        await kube.controller.finish(NS, pod["metadata"]["name"], exit_code=4)
        ended = await status_until(watching, "r-watched", _exited)
        assert (ended.exit_code, ended.failure) == (4, "exit_code")
    finally:
        await watching.close()


async def test_artifacts_are_the_log_of_every_attempt_and_no_outputs(
    kube: FakeKubeServer, backend: KubernetesJobBackend, tmp_path: Path
) -> None:
    assert kube.controller is not None
    first, second = Scenario("fail", exit_code=1, log="try 1"), Scenario("succeed", log="try 2")
    kube.controller.plan([first, second], labels={m.RUN_LABEL: m.run_label("r-log")})
    backend.log_dir = tmp_path
    await backend.start("r-log", spec(), {}, attempt=1, owner=OWNER)
    await status_until(backend, "r-log", _exited)
    await backend.start("r-log", spec(), {}, attempt=2, owner=OWNER)
    await status_until(backend, "r-log", _exited, attempt=2)

    artifacts = await backend.artifacts("r-log")

    assert artifacts.outputs == [] and artifacts.log is not None
    assert artifacts.log.read_text() == "try 1\n\n=== attempt 2 ===\ntry 2\n"
    assert (await backend.artifacts("never-ran")).log is None
