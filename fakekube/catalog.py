"""Which resources exist, their kinds, scope and subresources: kmock's bundled discovery of a K3s cluster."""

from __future__ import annotations

from dataclasses import dataclass

import kmock


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


class Catalog:
    """Resource types by (group, plural), by (apiVersion, kind) and by the names tests use ("Pod", "jobs.batch")."""

    def __init__(self, resources: kmock.ResourcesArray) -> None:
        self._by_plural: dict[tuple[str, str], ResourceType] = {}
        self._by_kind: dict[tuple[str, str], ResourceType] = {}
        self._by_name: dict[str, ResourceType] = {}
        for ref in resources:
            info = resources[ref]
            if ref.group is None or ref.version is None or ref.plural is None or info.kind is None:
                continue
            rtype = ResourceType(
                group=ref.group,
                version=ref.version,
                plural=ref.plural,
                kind=info.kind,
                namespaced=bool(info.namespaced),
                subresources=frozenset(info.subresources),
            )
            # The first version seen of a group stays preferred: v1 is listed before v1beta1 and v2.
            if rtype.key in self._by_plural and self._by_plural[rtype.key].version == "v1":
                continue
            self._by_plural[rtype.key] = rtype
            self._by_kind[(rtype.group, rtype.kind)] = rtype
        for rtype in self._by_plural.values():
            # Core and the common workload groups win over look-alikes (events.k8s.io, metrics.k8s.io).
            for name in (rtype.kind, rtype.kind.lower(), rtype.plural):
                current = self._by_name.get(name)
                if current is None or _rank(rtype.group) < _rank(current.group):
                    self._by_name[name] = rtype
            self._by_name[f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural] = rtype

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._by_plural.get((group, plural))

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        return self._by_kind.get((group, kind))

    def lookup(self, name: str) -> ResourceType:
        """`Pod`, `pods`, `deployments.apps`, `Job`: the resource type a test means."""
        rtype = self._by_name.get(name) or self._by_name.get(name.lower())
        if rtype is None:
            raise KeyError(f"unknown resource {name!r}")
        return rtype


_PREFERRED_GROUPS = ("", "apps", "batch", "rbac.authorization.k8s.io", "networking.k8s.io", "policy")


def _rank(group: str) -> int:
    return _PREFERRED_GROUPS.index(group) if group in _PREFERRED_GROUPS else len(_PREFERRED_GROUPS)
