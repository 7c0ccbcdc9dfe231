"""The fake API server's subresources beyond the object itself: a pod's log (followed while it runs), a pod's
binding and eviction, a service account's token, and the kubelet's side channel that appends to a pod's log."""

from __future__ import annotations

import copy
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import kmock

from fakekube import logs, paths, watching
from fakekube.catalog import Catalog, ResourceType
from fakekube.errors import ApiError, bad_request
from fakekube.registry import Registry
from fakekube.store import ObjKey, Store, meta, now
from fakekube.wire import PLAIN, Reply, Stream, status_ok

KUBELET_PREFIX = "/fakekube/v1/"


@dataclass
class Subresources:
    catalog: Catalog
    store: Store
    registry: Registry
    pod_logs: logs.PodLogs

    def log(self, pod: dict[str, Any], query: Any) -> Reply | Stream:
        container = logs.container_of(pod, query.get("container"))
        logs.check_readable(pod, container)
        uid = meta(pod)["uid"]
        timestamps = paths.is_true(query.get("timestamps"))
        lines = self.pod_logs.lines(uid, container)
        tail = query.get("tailLines")
        start = max(len(lines) - int(tail), 0) if tail is not None else 0
        if not paths.is_true(query.get("follow")) or logs.is_finished(pod, container):
            return Reply(200, logs.render(lines[start:], timestamps), PLAIN)
        key = ObjKey("", "pods", meta(pod)["namespace"], meta(pod)["name"])

        async def follow() -> AsyncIterator[bytes]:
            sent = start
            while True:
                waiter = self.store.waiter()
                current = self.pod_logs.lines(uid, container)
                if sent < len(current):
                    yield logs.render(current[sent:], timestamps)
                    sent = len(current)
                live = self.store.get(key)
                if self.store.closed or live is None or meta(live).get("uid") != uid:
                    return
                if logs.is_finished(live, container):
                    return
                await self.store.wait(waiter, watching.DEFAULT_TIMEOUT)

        return Stream(PLAIN, follow())

    def create(self, rtype: ResourceType, namespace: str | None, name: str, sub: str | None, body: Any) -> Reply:
        if rtype.key == ("", "pods") and sub == "binding":
            return Reply(201, self._bind(namespace, name, body))
        if rtype.key == ("", "pods") and sub == "eviction":
            options = (body or {}).get("deleteOptions") or {}
            self.registry.delete(rtype, namespace, name, options)
            return Reply(201, status_ok({"name": name, "kind": "pods"}))
        if rtype.key == ("", "serviceaccounts") and sub == "token":
            self.registry.get(rtype, namespace, name)
            token = {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now()},
                "spec": (body or {}).get("spec") or {},
                "status": {"token": secrets.token_urlsafe(32), "expirationTimestamp": now()},
            }
            return Reply(201, token)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _bind(self, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        pods = self.catalog.lookup("pods")
        pod = self.registry.get(pods, namespace, name)
        node = ((body or {}).get("target") or {}).get("name")
        if not node:
            raise bad_request("a binding needs target.name")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                f'is already assigned to node "{current}"',
            )
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}
        )
        status["conditions"] = conditions
        self.registry.write(pods, pod, new)
        return status_ok({"name": name, "kind": "pods"})

    def kubelet_write(self, request: kmock.Request) -> Reply:
        """POST /fakekube/v1/namespaces/{ns}/pods/{name}/log?container=c: a container printed this text."""
        parts = request.url.path[len(KUBELET_PREFIX) :].strip("/").split("/")
        if (
            request.method.value != "POST"
            or len(parts) != 5
            or parts[0] != "namespaces"
            or parts[2:5:2] != ["pods", "log"]
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.registry.get(self.catalog.lookup("pods"), parts[1], parts[3])
        container = logs.container_of(pod, request.params.get("container"))
        self.pod_logs.append(meta(pod)["uid"], container, request.text)
        self.store.notify()
        return Reply(201, status_ok())
