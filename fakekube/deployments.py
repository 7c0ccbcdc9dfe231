"""The ReplicaSet and Deployment controllers: a ReplicaSet keeps its replicas of a pod template, a Deployment
keeps one ReplicaSet per template and reports its rollout."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

from fakekube.client import Client, ClientError, Informer, path
from fakekube.reconciling import (
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
    owner_ref,
    pod_from_template,
    record_event,
)
from fakekube.registry import random_suffix


class ReplicaSetController:
    def __init__(self, client: Client, sets: Callable[[], Informer], pods: Callable[[], Informer]) -> None:
        self.client = client
        self._sets = sets
        self._pods = pods
        self.queue = WorkQueue(self.reconcile, "replicasets")
        self.expect = Expectations()
        self._failures: dict[str, dict[str, Any]] = {}  # uid -> ReplicaFailure condition, kept stable
        self.on_change: Callable[[dict[str, Any]], None] = lambda _rs: None

    def on_set(self, kind: str, rs: dict[str, Any]) -> None:
        if kind != "DELETED":
            self.queue.add(key_of(rs))
        self.on_change(rs)

    def on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        owner = controller_of(pod, "ReplicaSet")
        if owner is not None:
            self.expect.seen(pod)
            self.queue.add((pod["metadata"]["namespace"], owner["name"]))

    async def reconcile(self, key: Key) -> None:
        rs = self._sets().cache.get(key)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        uid, spec = rs["metadata"]["uid"], rs.get("spec") or {}
        pods = [p for p in self._pods().items(key[0]) if owned_by(p, uid) and is_active(p)]
        want = spec.get("replicas", 1) - len(pods) - self.expect.pending(uid)
        for _ in range(max(want, 0)):
            name = f"{rs['metadata']['name']}-{random_suffix()}"
            pod = pod_from_template(rs, spec.get("template") or {}, name)
            self.expect.add(uid, name)
            try:
                await self.client.create(path("v1", "pods", key[0]), pod)
                self._failures.pop(uid, None)
            except ClientError as exc:
                self.expect.seen({"metadata": {"name": name, "ownerReferences": [{"uid": uid}]}})
                old = self._failures.get(uid)
                if old is None or old["message"] != exc.message:
                    self._failures[uid] = new_condition("ReplicaFailure", "True", "FailedCreate", exc.message)
                await record_event(self.client, rs, "FailedCreate", f"Error creating: {exc.message}")
                self.queue.add(key, 0.2)
                break
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[: max(-want, 0)]:
            with contextlib.suppress(ClientError):
                await self.client.delete(path("v1", "pods", key[0], pod["metadata"]["name"]))
        ready = sum(1 for p in pods if is_ready(p))
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
            self.queue.add(key_of(deployment))

    def on_set(self, rs: dict[str, Any]) -> None:
        owner = controller_of(rs, "Deployment")
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
        owned = [rs for rs in self._sets().items(key[0]) if owned_by(rs, uid)]
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
                    "ownerReferences": [owner_ref(deployment)],
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
            new_condition(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                "lastUpdateTime",
            )
            if available
            else new_condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                "lastUpdateTime",
            )
        ]
        deadline = spec.get("progressDeadlineSeconds", 600) * self.time_scale
        since = age_of(current["metadata"].get("creationTimestamp"))
        if available:
            conditions.append(
                new_condition(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable",
                    f'ReplicaSet "{rs_name}" has successfully progressed.',
                    "lastUpdateTime",
                )
            )
        elif since >= deadline:
            conditions.append(
                new_condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{rs_name}" has timed out progressing.',
                    "lastUpdateTime",
                )
            )
        else:
            conditions.append(
                new_condition(
                    "Progressing",
                    "True",
                    "ReplicaSetUpdated",
                    f'ReplicaSet "{rs_name}" is progressing.',
                    "lastUpdateTime",
                )
            )
            self.queue.add(key_of(deployment), deadline - since + 0.01)
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
        await self.client.patch(path("apps/v1", "deployments", *key_of(deployment), "status"), {"status": body})


def _same_status(old: dict[str, Any], new: dict[str, Any]) -> bool:
    def strip(status: dict[str, Any]) -> dict[str, Any]:
        conditions = [{k: v for k, v in c.items() if not k.startswith("last")} for c in status.get("conditions") or []]
        return {**{k: v for k, v in status.items() if v is not None}, "conditions": conditions}

    return strip(old) == strip(new)
