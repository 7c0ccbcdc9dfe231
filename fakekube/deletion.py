"""What deleting means beyond removing: DeleteOptions' preconditions and propagation policy, grace periods of
pods a kubelet still runs, and the finalizers that hold an object until its dependents or its node let go."""

from __future__ import annotations

from typing import Any

from fakekube.catalog import ResourceType
from fakekube.errors import STALE, bad_request, conflict
from fakekube.store import meta

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# Resources whose API default is to orphan dependents (kept by kube-apiserver for compatibility).
ORPHAN_BY_DEFAULT = frozenset({("batch", "jobs"), ("batch", "cronjobs"), ("", "replicationcontrollers")})


def check_preconditions(rtype: ResourceType, name: str, old: dict[str, Any], options: dict[str, Any]) -> None:
    """DeleteOptions.preconditions: the uid and resourceVersion the client expects, a conflict otherwise."""
    preconditions = options.get("preconditions") or {}
    if preconditions.get("uid") and preconditions["uid"] != meta(old).get("uid"):
        why = (
            f"Precondition failed: UID in precondition: {preconditions['uid']}, "
            f"UID in object meta: {meta(old).get('uid')}"
        )
        raise conflict(rtype.plural, rtype.group, name, why)
    if preconditions.get("resourceVersion") and preconditions["resourceVersion"] != meta(old).get("resourceVersion"):
        raise conflict(rtype.plural, rtype.group, name, STALE)


def propagation(rtype: ResourceType, options: dict[str, Any]) -> str:
    policy = options.get("propagationPolicy")
    if policy in ("Orphan", "Background", "Foreground"):
        return str(policy)
    if policy:
        raise bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
    orphan = options.get("orphanDependents")
    if orphan is not None:
        return "Orphan" if orphan else "Background"
    return "Orphan" if rtype.key in ORPHAN_BY_DEFAULT else "Background"


def grace_period(rtype: ResourceType, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Only pods bound to a node and not finished wait for the kubelet; everything else goes at once."""
    if rtype.key != ("", "pods"):
        return 0
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
        return 0
    grace = options.get("gracePeriodSeconds")
    if grace is None:
        grace = spec.get("terminationGracePeriodSeconds", 30)
    return max(int(grace), 0)


def drop_empty_finalizers(obj: dict[str, Any]) -> dict[str, Any]:
    if not obj["metadata"].get("finalizers"):
        obj["metadata"].pop("finalizers", None)
    return obj


def still_stopping(rtype: ResourceType, obj: dict[str, Any]) -> bool:
    """A namespace waits for its content; a pod in its grace period waits for the kubelet's final delete."""
    if rtype.key == ("", "namespaces"):
        return bool((obj.get("spec") or {}).get("finalizers"))
    if rtype.key == ("", "pods"):
        return bool(meta(obj).get("deletionGracePeriodSeconds"))
    return False
