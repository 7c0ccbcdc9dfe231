"""JSON patch, JSON merge patch, strategic merge patch and server-side apply over plain dicts.

Strategic merge needs the Go struct tags of every type; here the merge keys of the lists that matter are
known by field name, which covers pods, workloads, services, RBAC and status conditions. Other lists are
replaced whole, as JSON merge patch would.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from fakekube.errors import ApiError, bad_request, unsupported_media

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Lists merged item by item, keyed by this field (patchMergeKey in the API types).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "resourceClaims": "name",
    "topologySpreadConstraints": "topologyKey",
    "subsets": "addresses",
}
# Container ports are keyed by containerPort, service ports by port: told apart by their items.
_PORT_KEYS = ("containerPort", "port")
# Lists of scalars merged as sets (patchStrategy=merge without a key).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null removes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes strategic merge patch, with the `$patch: replace|delete` and `$retainKeys` directives."""
    if isinstance(patch, list):
        return _merge_list(target if isinstance(target, list) else [], patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [x for x in result.get(name) or [] if x not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        merged = strategic_merge(result.get(key), value, key)
        if merged is None:
            result.pop(key, None)
        else:
            result[key] = merged
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        for candidate in _PORT_KEYS:
            if items and all(isinstance(i, dict) and candidate in i for i in items):
                return candidate
        return None
    return MERGE_KEYS.get(field)


def _merge_list(target: list[Any], patch: list[Any], field: str) -> list[Any]:
    if field in MERGED_SCALAR_LISTS:
        result = list(target)
        result.extend(x for x in patch if x not in result)
        return result
    key = _merge_key(field, patch) or _merge_key(field, target)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    if any(i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if i.get("$patch") != "replace"]
    result = [copy.deepcopy(i) for i in target]
    for item in patch:
        position = next((n for n, old in enumerate(result) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(copy.deepcopy(item))
        else:
            result[position] = strategic_merge(result[position], item, field)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    try:
        patched: dict[str, Any] = jsonpatch.apply_patch(target, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise ApiError(422, "Invalid", f"the json patch could not be applied: {exc}") from exc
    return patched


def apply_patch(content_type: str, target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """The object after a PATCH of this content type; apply configurations merge like strategic patches."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("the patch body must be a JSON object")
    if media == MERGE_PATCH:
        result = merge_patch(target, patch)
    elif media in (STRATEGIC_MERGE_PATCH, APPLY_PATCH):
        result = strategic_merge(target, patch)
    else:
        raise unsupported_media(content_type)
    assert isinstance(result, dict)
    return result


def prune(live: dict[str, Any], previous: dict[str, Any], applied: dict[str, Any]) -> None:
    """Remove from `live` what the `previous` apply configuration set and the `applied` one no longer does."""
    for key, old in previous.items():
        if key in ("apiVersion", "kind"):
            continue
        if key not in applied:
            live.pop(key, None)
            continue
        new, current = applied[key], live.get(key)
        if isinstance(old, dict) and isinstance(new, dict) and isinstance(current, dict):
            prune(current, old, new)
        elif isinstance(old, list) and isinstance(new, list) and isinstance(current, list):
            live[key] = _prune_list(key, current, old, new)


def _prune_list(field: str, current: list[Any], old: list[Any], new: list[Any]) -> list[Any]:
    if field in MERGED_SCALAR_LISTS:
        return [x for x in current if x in new or x not in old]
    key = _merge_key(field, old) or _merge_key(field, new)
    if key is None:
        return current
    kept = {item.get(key) for item in new if isinstance(item, dict)}
    dropped = {item.get(key) for item in old if isinstance(item, dict)} - kept
    result = [item for item in current if not (isinstance(item, dict) and item.get(key) in dropped)]
    for item in result:
        if not isinstance(item, dict):
            continue
        before = next((o for o in old if isinstance(o, dict) and o.get(key) == item.get(key)), None)
        after = next((n for n in new if isinstance(n, dict) and n.get(key) == item.get(key)), None)
        if before is not None and after is not None:
            prune(item, before, after)
    return result
