"""The Job controller: pods for its Jobs, and their status (fakekube.deployments: ReplicaSets and Deployments).

Each reconcile reads the informers' caches and writes over the API. Pods created but not yet seen in the
cache are remembered ("expectations"), or a fast second reconcile would create them twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from fakekube.client import Client, ClientError, Informer, path
from fakekube.reconciling import (
    TERMINAL,
    Expectations,
    Key,
    WorkQueue,
    age_of,
    controller_of,
    is_active,
    is_ready,
    key_of,
    new_condition,
    owned_by,
    pod_from_template,
    record_event,
)
from fakekube.registry import random_suffix
from fakekube.scenarios import ATTEMPT
from fakekube.store import now

_COMPLETE = "Reached expected number of succeeded pods"


class JobController:
    """batch/v1 Jobs: one pod per missing completion, retries up to backoffLimit, deadline, conditions."""

    def __init__(
        self, client: Client, jobs: Callable[[], Informer], pods: Callable[[], Informer], time_scale: float
    ) -> None:
        self.client = client
        self._jobs = jobs
        self._pods = pods
        self.time_scale = time_scale
        self.queue = WorkQueue(self.reconcile, "jobs")
        self.expect = Expectations()
        self._counted: dict[str, dict[str, str]] = {}  # job uid -> pod uid -> succeeded|failed
        self._attempts: dict[str, int] = {}

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._counted.pop(job["metadata"]["uid"], None)
            self._attempts.pop(job["metadata"]["uid"], None)
            return
        self.queue.add(key_of(job))

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        owner = controller_of(pod, "Job")
        if owner is None:
            return
        self.expect.seen(pod)
        phase = (pod.get("status") or {}).get("phase")
        counted = self._counted.setdefault(owner["uid"], {})
        if phase in TERMINAL:
            counted[pod["metadata"]["uid"]] = "succeeded" if phase == "Succeeded" else "failed"
        elif kind == "DELETED":
            # A pod gone before it finished counts as failed, as with job-tracking finalizers.
            counted.setdefault(pod["metadata"]["uid"], "failed")
        self.queue.add((pod["metadata"]["namespace"], owner["name"]))

    async def reconcile(self, key: Key) -> None:
        job = self._jobs().cache.get(key)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        status = job.get("status") or {}
        if any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in status.get("conditions") or []
        ):
            return
        uid, spec = job["metadata"]["uid"], job.get("spec") or {}
        pods = [p for p in self._pods().items(key[0]) if owned_by(p, uid)]
        counted = self._counted.setdefault(uid, {})
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase in TERMINAL:
                counted[pod["metadata"]["uid"]] = "succeeded" if phase == "Succeeded" else "failed"
        active = [p for p in pods if is_active(p)]
        succeeded = sum(1 for v in counted.values() if v == "succeeded")
        failed = sum(1 for v in counted.values() if v == "failed")
        completions = spec.get("completions") or 1
        start = status.get("startTime") or now()
        patch: dict[str, Any] = {"startTime": start}
        deadline = spec.get("activeDeadlineSeconds")
        if succeeded >= completions:
            patch.update(
                completionTime=now(),
                conditions=[
                    new_condition("SuccessCriteriaMet", "True", "CompletionsReached", _COMPLETE, "lastProbeTime"),
                    new_condition("Complete", "True", "CompletionsReached", _COMPLETE, "lastProbeTime"),
                ],
            )
        elif failed > spec.get("backoffLimit", 6):
            await self._stop(active)
            patch["conditions"] = _failed("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            active = []
        elif deadline is not None and age_of(start) >= deadline * self.time_scale:
            await self._stop(active)
            patch["conditions"] = _failed("DeadlineExceeded", "Job was active longer than specified deadline")
            active = []
        elif not spec.get("suspend"):
            want = min(spec.get("parallelism", 1), completions - succeeded) - len(active) - self.expect.pending(uid)
            for _ in range(max(want, 0)):
                if not await self._create_pod(job):
                    self.queue.add(key, 0.2)
                    break
            if deadline is not None:
                self.queue.add(key, max(deadline * self.time_scale - age_of(start), 0) + 0.01)
        terminating = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        patch.update(
            active=len(active),
            ready=sum(1 for p in active if is_ready(p)),
            succeeded=succeeded,
            failed=failed,
            terminating=terminating,
        )
        if "conditions" not in patch and all(status.get(k, 0) == v for k, v in patch.items()):
            return
        await self.client.patch(path("batch/v1", "jobs", key[0], key[1], "status"), {"status": patch})

    async def _create_pod(self, job: dict[str, Any]) -> bool:
        uid = job["metadata"]["uid"]
        attempt = self._attempts.get(uid, 0)
        name = f"{job['metadata']['name']}-{random_suffix()}"
        pod = pod_from_template(job, (job.get("spec") or {}).get("template") or {}, name)
        pod["metadata"]["annotations"][ATTEMPT] = str(attempt)
        self.expect.add(uid, name)
        try:
            await self.client.create(path("v1", "pods", job["metadata"]["namespace"]), pod)
        except ClientError as exc:
            self.expect.seen({"metadata": {"name": name, "ownerReferences": [{"uid": uid}]}})
            await record_event(self.client, job, "FailedCreate", f"Error creating: {exc.message}")
            return False
        self._attempts[uid] = attempt + 1
        return True

    async def _stop(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            with contextlib.suppress(ClientError):
                await self.client.delete(path("v1", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"]))


def _failed(reason: str, message: str) -> list[dict[str, Any]]:
    return [
        new_condition("FailureTarget", "True", reason, message, "lastProbeTime"),
        new_condition("Failed", "True", reason, message, "lastProbeTime"),
    ]
