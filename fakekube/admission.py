"""Admission the way a default kube-apiserver runs it on create: NamespaceLifecycle, ServiceAccount,
LimitRanger and ResourceQuota, with the status codes and messages of the real plugins.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fakekube import quantities
from fakekube.catalog import ResourceType
from fakekube.errors import ApiError, forbidden, not_found
from fakekube.store import ObjKey, Store, meta

_TERMINAL = ("Succeeded", "Failed")
# Quota names for object counts that predate the count/<resource>.<group> form.
_LEGACY_COUNTS = {
    ("", "pods"): "pods",
    ("", "services"): "services",
    ("", "secrets"): "secrets",
    ("", "configmaps"): "configmaps",
    ("", "persistentvolumeclaims"): "persistentvolumeclaims",
    ("", "replicationcontrollers"): "replicationcontrollers",
    ("", "resourcequotas"): "resourcequotas",
}


def namespace_lifecycle(store: Store, rtype: ResourceType, namespace: str | None, name: str) -> None:
    if not rtype.namespaced or namespace is None:
        return
    ns = store.get(ObjKey("", "namespaces", None, namespace))
    if ns is None:
        raise not_found("namespaces", "", namespace)
    if meta(ns).get("deletionTimestamp"):
        raise ApiError(
            403,
            "Forbidden",
            f'{rtype.plural} "{name}" is forbidden: unable to create new content in namespace {namespace} '
            "because it is being terminated",
            {"name": name, "kind": rtype.plural, "causes": [{"reason": "NamespaceTerminating", "field": "metadata"}]},
        )


def service_account(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
    if store.get(ObjKey("", "serviceaccounts", namespace, account)) is None:
        name = meta(pod).get("name") or meta(pod).get("generateName", "")
        why = f'error looking up service account {namespace}/{account}: serviceaccount "{account}" not found'
        raise forbidden("pods", "", name, why)


def limit_ranges(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """Fill default requests and limits from the namespace's LimitRanges; refuse limits above their max."""
    ranges = [
        item
        for lr in store.items("", "limitranges", namespace)
        for item in (lr.get("spec") or {}).get("limits") or []
        if item.get("type") == "Container"
    ]
    if not ranges:
        return
    spec = pod.get("spec") or {}
    name = meta(pod).get("name") or meta(pod).get("generateName", "")
    for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        resources = container.setdefault("resources", {})
        for item in ranges:
            limits = resources.setdefault("limits", {})
            for res, value in (item.get("default") or {}).items():
                limits.setdefault(res, value)
            requests = resources.setdefault("requests", {})
            for res, value in (item.get("defaultRequest") or item.get("default") or {}).items():
                requests.setdefault(res, value)
            for res, value in (item.get("max") or {}).items():
                limit = limits.get(res)
                if limit is not None and quantities.parse(limit) > quantities.parse(value):
                    why = f"maximum {res} usage per Container is {value}, but limit is {limit}"
                    raise forbidden("pods", "", name, why)
        if not resources.get("limits"):
            resources.pop("limits", None)
        if not resources.get("requests"):
            resources.pop("requests", None)


def pod_usage(pod: dict[str, Any]) -> dict[str, Decimal]:
    totals = quantities.pod_totals(pod)
    usage = {"pods": Decimal(1), "count/pods": Decimal(1), **totals}
    for res in ("cpu", "memory", "ephemeral-storage"):
        if f"requests.{res}" in totals:
            usage[res] = totals[f"requests.{res}"]
    return usage


def namespace_usage(store: Store, namespace: str) -> dict[str, Decimal]:
    """What the namespace's ResourceQuotas count now: non-terminal pods' resources and object counts."""
    used: dict[str, Decimal] = {}
    for pod in store.items("", "pods", namespace):
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        for res, value in pod_usage(pod).items():
            used[res] = used.get(res, Decimal(0)) + value
    return used


def count_names(rtype: ResourceType) -> list[str]:
    qualified = f"{rtype.plural}.{rtype.group}" if rtype.group else rtype.plural
    names = [f"count/{qualified}"]
    legacy = _LEGACY_COUNTS.get(rtype.key)
    if legacy:
        names.append(legacy)
    return names


def resource_quota(store: Store, rtype: ResourceType, namespace: str | None, obj: dict[str, Any]) -> None:
    if namespace is None:
        return
    quotas = store.items("", "resourcequotas", namespace)
    if not quotas:
        return
    name = meta(obj).get("name") or meta(obj).get("generateName", "")
    requested: dict[str, Decimal] = {n: Decimal(1) for n in count_names(rtype)}
    if rtype.key == ("", "pods"):
        requested.update(pod_usage(obj))
    for quota in quotas:
        hard = ((quota.get("spec") or {}).get("hard")) or {}
        qname = meta(quota)["name"]
        relevant = sorted(set(hard) & set(requested))
        compute = [r for r in hard if r.startswith(("requests.", "limits.")) or r in ("cpu", "memory")]
        if rtype.key == ("", "pods"):
            missing = sorted(r for r in compute if r not in requested)
            if missing:
                raise forbidden("pods", "", name, f"failed quota: {qname}: must specify {','.join(missing)}")
        if not relevant:
            continue
        used = _counted(store, namespace, relevant)
        over = [r for r in relevant if used.get(r, Decimal(0)) + requested[r] > quantities.parse(hard[r])]
        if over:
            why = "exceeded quota: {}, requested: {}, used: {}, limited: {}".format(
                qname,
                ",".join(f"{r}={quantities.render(requested[r])}" for r in over),
                ",".join(f"{r}={quantities.render(used.get(r, Decimal(0)))}" for r in over),
                ",".join(f"{r}={hard[r]}" for r in over),
            )
            raise forbidden(rtype.plural, rtype.group, name, why)


def _counted(store: Store, namespace: str, names: list[str]) -> dict[str, Decimal]:
    used = namespace_usage(store, namespace)
    for name in names:
        if name.startswith("count/") and name != "count/pods":
            plural, _, group = name[len("count/") :].partition(".")
            used[name] = Decimal(len(store.items(group, plural, namespace)))
    for key, legacy in _LEGACY_COUNTS.items():
        if legacy in names and legacy != "pods":
            used[legacy] = Decimal(len(store.items(key[0], key[1], namespace)))
    return used


def quota_status(store: Store, quota: dict[str, Any]) -> dict[str, Any]:
    """The status a quota controller would write: hard as in spec, used as counted now."""
    namespace = meta(quota)["namespace"]
    hard = dict(((quota.get("spec") or {}).get("hard")) or {})
    used = _counted(store, namespace, list(hard))
    return {"hard": hard, "used": {r: quantities.render(used.get(r, Decimal(0))) for r in hard}}
