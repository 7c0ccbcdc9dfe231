"""Kubernetes URL paths and HTTP methods mapped to API verbs, as the real API server routes them.

kmock's own parser breaks on `/api/v1/namespaces` (500) and reads `/api/v1/namespaces/x` as "namespace x,
no resource"; it also knows `watch=true` only, while kubernetes-asyncio sends `watch=True`, and it has no
verb for PUT or for DELETE on a collection. The API handler re-routes every request with this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Verb = Literal["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]

# Subresources of a namespace; anything else after /namespaces/{name}/ is a namespaced resource.
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_TRUE = frozenset({"true", "True", "1"})


@dataclass(frozen=True)
class Route:
    """Where a request goes. `plural` is None for discovery documents (/api, /apis/apps/v1 ...)."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    verb: Verb = "get"

    @property
    def resource(self) -> str:
        """The resource as RBAC and audit logs name it: `pods`, `pods/status`, `deployments.apps`."""
        base = f"{self.plural}.{self.group}" if self.group else str(self.plural)
        return f"{base}/{self.subresource}" if self.subresource else base


def is_true(value: str | None) -> bool:
    return value in _TRUE


def route(path: str, method: str, query: Mapping[str, str]) -> Route | None:
    """Route a request the way kube-apiserver does; None for paths outside /api and /apis."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return None
    if parts[0] == "api":
        if len(parts) < 2:
            return Route(group="", version="")
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return Route(group=parts[1] if len(parts) > 1 else "", version="")
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return Route(group=group, version=version)

    watch = is_true(query.get("watch"))
    if rest[0] == "watch":  # the deprecated /api/v1/watch/... form
        watch, rest = True, rest[1:]
        if not rest:
            return Route(group=group, version=version)

    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = "/".join(rest[2:]) or None
    return Route(
        group=group,
        version=version,
        plural=plural,
        namespace=namespace,
        name=name,
        subresource=subresource,
        verb=_verb(method.upper(), name, subresource, watch),
    )


def _verb(method: str, name: str | None, subresource: str | None, watch: bool) -> Verb:
    if method == "GET":
        if watch:
            return "watch"
        return "list" if name is None else "get"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method == "PATCH":
        return "patch"
    if method == "DELETE":
        return "deletecollection" if name is None else "delete"
    return "get"
