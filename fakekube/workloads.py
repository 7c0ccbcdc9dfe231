"""The Job, ReplicaSet and Deployment controllers: pods for their owners, and their owners' status.

Each reconcile reads the informers' caches and writes over the API. Pods created but not yet seen in the
cache are remembered ("expectations"), or a fast second reconcile would create them twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fakekube.client import Client, ClientError, Informer, path
from fakekube.registry import random_suffix
from fakekube.scenarios import ATTEMPT
from fakekube.store import now

log = logging.getLogger(__name__)
Key = tuple[str, str]
TERMINAL = ("Succeeded", "Failed")
_COMPLETE = "Reached expected number of succeeded pods"


class WorkQueue:
    """Keys to reconcile, each queued once however often it is added; errors retry after a pause."""

    def __init__(self, reconcile: Callable[[Key], Awaitable[None]], name: str) -> None:
        self._reconcile = reconcile
        self._name = name
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    def add(self, key: Key, delay: float = 0.0) -> None:
        if delay > 0:
            handle = asyncio.get_running_loop().call_later(delay, self.add, key)
            self._timers.add(handle)
            return
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    async def run(self) -> None:
        try:
            while True:
                key = await self._queue.get()
                self._pending.discard(key)
                try:
                    await self._reconcile(key)
                except ClientError as exc:
                    if exc.status != 404:
                        self.add(key, 0.05)
                except Exception:
                    log.exception("%s: reconciling %s failed", self._name, key)
                    self.add(key, 0.2)
        finally:
            for handle in self._timers:
                handle.cancel()


def _key(obj: dict[str, Any]) -> Key:
    return (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def _controller_of(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return dict(ref)
    return None


def _owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _active(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in TERMINAL and not pod["metadata"].get("deletionTimestamp")


def _ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _condition(kind: str, status: str, reason: str, message: str, *stamps: str) -> dict[str, Any]:
    """A condition with the timestamps its kind has: Jobs probe, Deployments update, ReplicaSets neither."""
    stamp = now()
    condition = {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp}
    condition.update({name: stamp for name in stamps})
    return condition


def _age(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


class _Expectations:
    """Pod names created per owner uid that the pod cache has not shown yet."""

    def __init__(self) -> None:
        self._names: dict[str, set[str]] = {}

    def add(self, owner: str, name: str) -> None:
        self._names.setdefault(owner, set()).add(name)

    def seen(self, pod: dict[str, Any]) -> None:
        for ref in pod["metadata"].get("ownerReferences") or []:
            self._names.get(ref.get("uid", ""), set()).discard(pod["metadata"]["name"])

    def pending(self, owner: str) -> int:
        return len(self._names.get(owner, ()))


async def _event(client: Client, obj: dict[str, Any], reason: str, message: str, kind: str = "Warning") -> None:
    """A v1 Event about `obj`, as `kubectl describe` would show it."""
    namespace = obj["metadata"]["namespace"]
    body = {
        "metadata": {"generateName": f"{obj['metadata']['name']}.", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "uid": obj["metadata"]["uid"],
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "count": 1,
        "firstTimestamp": now(),
        "lastTimestamp": now(),
        "source": {"component": "fakekube-controller"},
    }
    with contextlib.suppress(ClientError):
        await client.create(path("v1", "events", namespace), body)


def _pod_from_template(owner: dict[str, Any], template: dict[str, Any], name: str) -> dict[str, Any]:
    template = copy.deepcopy(template)
    metadata = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": metadata.get("labels") or {},
            "annotations": metadata.get("annotations") or {},
            "ownerReferences": [_owner_ref(owner)],
        },
        "spec": template.get("spec") or {},
    }


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
        self.expect = _Expectations()
        self._counted: dict[str, dict[str, str]] = {}  # job uid -> pod uid -> succeeded|failed
        self._attempts: dict[str, int] = {}

    def on_job(self, kind: str, job: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._counted.pop(job["metadata"]["uid"], None)
            self._attempts.pop(job["metadata"]["uid"], None)
            return
        self.queue.add(_key(job))

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        owner = _controller_of(pod, "Job")
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
        pods = [p for p in self._pods().items(key[0]) if _owned_by(p, uid)]
        counted = self._counted.setdefault(uid, {})
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase in TERMINAL:
                counted[pod["metadata"]["uid"]] = "succeeded" if phase == "Succeeded" else "failed"
        active = [p for p in pods if _active(p)]
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
                    _condition("SuccessCriteriaMet", "True", "CompletionsReached", _COMPLETE, "lastProbeTime"),
                    _condition("Complete", "True", "CompletionsReached", _COMPLETE, "lastProbeTime"),
                ],
            )
        elif failed > spec.get("backoffLimit", 6):
            await self._stop(active)
            patch["conditions"] = _failed("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            active = []
        elif deadline is not None and _age(start) >= deadline * self.time_scale:
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
                self.queue.add(key, max(deadline * self.time_scale - _age(start), 0) + 0.01)
        terminating = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        patch.update(
            active=len(active),
            ready=sum(1 for p in active if _ready(p)),
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
        pod = _pod_from_template(job, (job.get("spec") or {}).get("template") or {}, name)
        pod["metadata"]["annotations"][ATTEMPT] = str(attempt)
        self.expect.add(uid, name)
        try:
            await self.client.create(path("v1", "pods", job["metadata"]["namespace"]), pod)
        except ClientError as exc:
            self.expect.seen({"metadata": {"name": name, "ownerReferences": [{"uid": uid}]}})
            await _event(self.client, job, "FailedCreate", f"Error creating: {exc.message}")
            return False
        self._attempts[uid] = attempt + 1
        return True

    async def _stop(self, pods: list[dict[str, Any]]) -> None:
        for pod in pods:
            with contextlib.suppress(ClientError):
                await self.client.delete(path("v1", "pods", pod["metadata"]["namespace"], pod["metadata"]["name"]))


def _failed(reason: str, message: str) -> list[dict[str, Any]]:
    return [
        _condition("FailureTarget", "True", reason, message, "lastProbeTime"),
        _condition("Failed", "True", reason, message, "lastProbeTime"),
    ]


class ReplicaSetController:
    def __init__(self, client: Client, sets: Callable[[], Informer], pods: Callable[[], Informer]) -> None:
        self.client = client
        self._sets = sets
        self._pods = pods
        self.queue = WorkQueue(self.reconcile, "replicasets")
        self.expect = _Expectations()
        self._failures: dict[str, dict[str, Any]] = {}  # uid -> ReplicaFailure condition, kept stable
        self.on_change: Callable[[dict[str, Any]], None] = lambda _rs: None

    def on_set(self, kind: str, rs: dict[str, Any]) -> None:
        if kind != "DELETED":
            self.queue.add(_key(rs))
        self.on_change(rs)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        owner = _controller_of(pod, "ReplicaSet")
        if owner is not None:
            self.expect.seen(pod)
            self.queue.add((pod["metadata"]["namespace"], owner["name"]))

    async def reconcile(self, key: Key) -> None:
        rs = self._sets().cache.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        uid, spec = rs["metadata"]["uid"], rs.get("spec") or {}
        pods = [p for p in self._pods().items(key[0]) if _owned_by(p, uid) and _active(p)]
        want = spec.get("replicas", 1) - len(pods) - self.expect.pending(uid)
        for _ in range(max(want, 0)):
            name = f"{rs['metadata']['name']}-{random_suffix()}"
            pod = _pod_from_template(rs, spec.get("template") or {}, name)
            self.expect.add(uid, name)
            try:
                await self.client.create(path("v1", "pods", key[0]), pod)
                self._failures.pop(uid, None)
            except ClientError as exc:
                self.expect.seen({"metadata": {"name": name, "ownerReferences": [{"uid": uid}]}})
                old = self._failures.get(uid)
                if old is None or old["message"] != exc.message:
                    self._failures[uid] = _condition("ReplicaFailure", "True", "FailedCreate", exc.message)
                await _event(self.client, rs, "FailedCreate", f"Error creating: {exc.message}")
                self.queue.add(key, 0.2)
                break
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[: max(-want, 0)]:
            with contextlib.suppress(ClientError):
                await self.client.delete(path("v1", "pods", key[0], pod["metadata"]["name"]))
        ready = sum(1 for p in pods if _ready(p))
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        failure = self._failures.get(uid)
        status["conditions"] = [failure] if failure else None
        if {k: v for k, v in status.items() if v is not None} == (rs.get("status") or {}):
            return
        await self.client.patch(path("apps/v1", "replicasets", key[0], key[1], "status"), {"status": status})


def template_hash(template: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    chars = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(chars[b % len(chars)] for b in digest[:10])


class DeploymentController:
    def __init__(
        self, client: Client, deployments: Callable[[], Informer], sets: Callable[[], Informer], time_scale: float
    ) -> None:
        self.client = client
        self._deployments = deployments
        self._sets = sets
        self.time_scale = time_scale
        self.queue = WorkQueue(self.reconcile, "deployments")

    def on_deployment(self, kind: str, deployment: dict[str, Any]) -> None:
        if kind != "DELETED":
            self.queue.add(_key(deployment))

    def on_set(self, rs: dict[str, Any]) -> None:
        owner = _controller_of(rs, "Deployment")
        if owner is not None:
            self.queue.add((rs["metadata"]["namespace"], owner["name"]))

    async def reconcile(self, key: Key) -> None:
        deployment = self._deployments().cache.get(key)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        uid, spec = deployment["metadata"]["uid"], deployment.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        digest = template_hash(template)
        name = f"{key[1]}-{digest}"
        owned = [rs for rs in self._sets().items(key[0]) if _owned_by(rs, uid)]
        current = next((rs for rs in owned if rs["metadata"]["name"] == name), None)
        replicas = spec.get("replicas", 1)
        revision = str(len(owned) + (0 if current else 1))
        if current is None:
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
            body = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": name,
                    "namespace": key[0],
                    "labels": template["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": revision},
                    "ownerReferences": [_owner_ref(deployment)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            }
            with contextlib.suppress(ClientError):
                await self.client.create(path("apps/v1", "replicasets", key[0]), body)
            return  # the ReplicaSet's events bring us back
        if (current.get("spec") or {}).get("replicas") != replicas:
            await self.client.patch(path("apps/v1", "replicasets", key[0], name), {"spec": {"replicas": replicas}})
        for old in owned:
            if old is not current and (old.get("spec") or {}).get("replicas"):
                await self.client.patch(
                    path("apps/v1", "replicasets", key[0], old["metadata"]["name"]), {"spec": {"replicas": 0}}
                )
        await self._status(deployment, current, owned)

    async def _status(self, deployment: dict[str, Any], current: dict[str, Any], owned: list[dict[str, Any]]) -> None:
        spec, status = deployment.get("spec") or {}, current.get("status") or {}
        replicas = spec.get("replicas", 1)
        ready = status.get("readyReplicas", 0)
        total = sum((rs.get("status") or {}).get("replicas", 0) for rs in owned)
        rs_name = current["metadata"]["name"]
        available = ready >= replicas
        conditions = [
            _condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                "lastUpdateTime",
            )
            if available
            else _condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                "lastUpdateTime",
            )
        ]
        deadline = spec.get("progressDeadlineSeconds", 600) * self.time_scale
        since = _age(current["metadata"].get("creationTimestamp"))
        if available:
            conditions.append(
                _condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                    "lastUpdateTime",
                )
            )
        elif since >= deadline:
            conditions.append(
                _condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                    "lastUpdateTime",
                )
            )
        else:
            conditions.append(
                _condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                    "lastUpdateTime",
                )
            )
            self.queue.add(_key(deployment), deadline - since + 0.01)
        for condition in status.get("conditions") or []:
            if condition.get("type") == "ReplicaFailure":
                conditions.append({**condition, "lastUpdateTime": condition.get("lastTransitionTime")})
        body = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": status.get("replicas", 0),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(replicas - ready, 0) or None,
            "conditions": conditions,
        }
        old = deployment.get("status") or {}
        if _same_status(old, body):
            return
        await self.client.patch(path("apps/v1", "deployments", *_key(deployment), "status"), {"status": body})


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        conditions = [{k: v for k, v in c.items() if not k.startswith("last")} for c in status.get("conditions") or []]
        return {**{k: v for k, v in status.items() if v is not None}, "conditions": conditions}

    return strip(old) == strip(new)
