"""What the workload controllers share: a work queue per controller, owner references, pod conditions,
events, and the "expectations" that keep a fast second reconcile from creating a pod twice."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fakekube.client import Client, ClientError, path
from fakekube.store import now

log = logging.getLogger("fakekube.workloads")
Key = tuple[str, str]
TERMINAL = ("Succeeded", "Failed")


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


def key_of(obj: dict[str, Any]) -> Key:
    return (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def controller_of(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return dict(ref)
    return None


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_active(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in TERMINAL and not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def new_condition(kind: str, status: str, reason: str, message: str, *stamps: str) -> dict[str, Any]:
    """A condition with the timestamps its kind has: Jobs probe, Deployments update, ReplicaSets neither."""
    stamp = now()
    condition = {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": stamp}
    condition.update({name: stamp for name in stamps})
    return condition


def age_of(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    then = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    return (datetime.datetime.now(datetime.UTC) - then).total_seconds()


class Expectations:
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


async def record_event(client: Client, obj: dict[str, Any], reason: str, message: str, kind: str = "Warning") -> None:
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


def pod_from_template(owner: dict[str, Any], template: dict[str, Any], name: str) -> dict[str, Any]:
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
            "ownerReferences": [owner_ref(owner)],
        },
        "spec": template.get("spec") or {},
    }
