"""The API verbs with kube-apiserver's semantics: create, get, list, update, patch, apply, delete.

Writes that change nothing store nothing: the resourceVersion stays and no watch event is sent, which is
what makes a repeated server-side apply observable as a no-op. Deletion honours finalizers, grace periods
of scheduled pods and the three propagation policies; the garbage collector does the cascading part.
"""

from __future__ import annotations

import copy
import datetime
import random
import uuid
from collections.abc import Callable
from typing import Any

from fakekube import admission, strategies
from fakekube.catalog import Catalog, ResourceType
from fakekube.deletion import (
    FOREGROUND,
    check_preconditions,
    drop_empty_finalizers,
    grace_period,
    propagation,
    still_stopping,
)
from fakekube.errors import STALE, ApiError, already_exists, bad_request, conflict, invalid, not_found
from fakekube.patching import APPLY_PATCH, apply_patch, prune
from fakekube.store import ObjKey, Store, meta, now

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
# Server-owned metadata: clients cannot set or change it.
_SERVER_FIELDS = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
Validator = Callable[[dict[str, Any]], None]


def random_suffix(length: int = 5) -> str:
    return "".join(random.choice(_NAME_CHARS) for _ in range(length))  # noqa: S311 - names, not secrets


class Registry:
    def __init__(self, store: Store, catalog: Catalog, validator: Validator | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.validator = validator
        self._applied: dict[tuple[str, str], dict[str, Any]] = {}  # (uid, field manager) -> last applied

    def key(self, rtype: ResourceType, namespace: str | None, name: str) -> ObjKey:
        return ObjKey(rtype.group, rtype.plural, namespace if rtype.namespaced else None, name)

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self.store.get(self.key(rtype, namespace, name))
        if obj is None:
            raise not_found(rtype.plural, rtype.group, name)
        return obj

    # --- create

    def create(self, rtype: ResourceType, namespace: str | None, body: Any, *, dry_run: bool = False) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_type(rtype, obj)
        metadata = obj.setdefault("metadata", {})
        if metadata.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        if rtype.namespaced:
            if metadata.get("namespace") and namespace and metadata["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = namespace or metadata.get("namespace")
            if not namespace:
                raise bad_request("the namespace of the object is required")
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
            namespace = None
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                raise invalid(
                    rtype.kind,
                    rtype.plural,
                    rtype.group,
                    "",
                    [("metadata.name", "Required value: name or generateName is required")],
                )
            metadata["name"] = metadata["generateName"] + random_suffix()
        name = metadata["name"]
        key = self.key(rtype, namespace, name)
        strategies.check_metadata(rtype, obj)
        admission.namespace_lifecycle(self.store, rtype, namespace, name)
        if self.store.get(key) is not None:
            raise already_exists(rtype.plural, rtype.group, name)
        for field in _SERVER_FIELDS:
            metadata.pop(field, None)
        metadata.pop("managedFields", None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now()
        if rtype.group:
            metadata["generation"] = 1
        strategies.prepare_create(rtype, obj)
        if rtype.key == ("", "pods") and namespace is not None:
            admission.service_account(self.store, namespace, obj)
            admission.limit_ranges(self.store, namespace, obj)
        admission.resource_quota(self.store, rtype, namespace, obj)
        if self.validator is not None:
            self.validator(obj)
        if dry_run:
            return obj
        stored = self.store.commit(key, rtype, obj)
        if rtype.key == ("", "namespaces"):
            self._bootstrap_namespace(name)
        return stored

    def _bootstrap_namespace(self, namespace: str) -> None:
        """What the service-account and root-CA controllers add to every new namespace."""
        for rtype_name, body in (
            ("serviceaccounts", {"metadata": {"name": "default"}}),
            ("configmaps", {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "fakekube\n"}}),
        ):
            rtype = self.catalog.lookup(rtype_name)
            obj = copy.deepcopy(body)
            obj["metadata"].update({"namespace": namespace, "uid": str(uuid.uuid4()), "creationTimestamp": now()})
            self.store.commit(self.key(rtype, namespace, obj["metadata"]["name"]), rtype, obj)

    def _check_type(self, rtype: ResourceType, obj: dict[str, Any]) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is not None and kind != rtype.kind:
            raise bad_request(f"the kind {kind!r} of the object does not match the resource {rtype.plural!r}")
        if api_version is not None and api_version.rsplit("/", 1)[0] != (rtype.group or api_version):
            raise bad_request(f"the apiVersion {api_version!r} of the object does not match the resource")
        obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version

    # --- update, patch, apply

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        old = self.get(rtype, namespace, name)
        body_name = meta(body).get("name")
        if body_name and body_name != name:
            raise bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        wanted_rv = meta(body).get("resourceVersion")
        if wanted_rv and wanted_rv != meta(old).get("resourceVersion"):
            raise conflict(rtype.plural, rtype.group, name, STALE)
        new = copy.deepcopy(body)
        self._check_type(rtype, new)
        return self._update(rtype, old, new, subresource, dry_run=dry_run)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Patch or apply; returns the object and whether it was created (apply of a missing object).

        An apply also removes what the same field manager applied last time and left out now, as server-side
        apply does for the fields a manager owns alone (other managers are not tracked).
        """
        media = content_type.split(";", 1)[0].strip().lower()
        key = self.key(rtype, namespace, name)
        old = self.store.get(key)
        if old is None:
            if media != APPLY_PATCH or subresource:
                raise not_found(rtype.plural, rtype.group, name)
            if not isinstance(body, dict) or meta(body).get("name") not in (None, name):
                raise bad_request("the name of the applied object must match the name on the URL")
            created = copy.deepcopy(body)
            created.setdefault("metadata", {})["name"] = name
            stored = self.create(rtype, namespace, created, dry_run=dry_run)
            if not dry_run:
                self._applied[(meta(stored)["uid"], field_manager or "")] = copy.deepcopy(body)
            return stored, True
        if isinstance(body, dict):
            if media == APPLY_PATCH:
                self._check_type(rtype, copy.deepcopy(body))
                if meta(body).get("name") not in (None, name):
                    raise bad_request("the name of the applied object must match the name on the URL")
            wanted_rv = meta(body).get("resourceVersion")
            if wanted_rv and wanted_rv != meta(old).get("resourceVersion"):
                raise conflict(rtype.plural, rtype.group, name, STALE)
        new = apply_patch(content_type, copy.deepcopy(old), body)
        if media == APPLY_PATCH and not subresource:
            owned = (meta(old)["uid"], field_manager or "")
            previous = self._applied.get(owned)
            if previous is not None:
                prune(new, previous, body)
            if not dry_run:
                self._applied[owned] = copy.deepcopy(body)
        return self._update(rtype, old, new, subresource, dry_run=dry_run), False

    def _update(
        self,
        rtype: ResourceType,
        old: dict[str, Any],
        new: dict[str, Any],
        subresource: str | None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        name = meta(old)["name"]
        if subresource == "status":
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status") or {}
            new = merged
        elif subresource:
            raise bad_request(f"the subresource {subresource!r} cannot be updated")
        else:
            if rtype.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            metadata = new.setdefault("metadata", {})
            for field in ("name", "namespace", *_SERVER_FIELDS):
                if field in meta(old):
                    metadata[field] = meta(old)[field]
                else:
                    metadata.pop(field, None)
            metadata.pop("managedFields", None)
            if meta(old).get("deletionTimestamp"):
                added = set(metadata.get("finalizers") or []) - set(meta(old).get("finalizers") or [])
                if added:
                    raise invalid(
                        rtype.kind,
                        rtype.plural,
                        rtype.group,
                        name,
                        [
                            (
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if the object is being deleted",
                            )
                        ],
                    )
            strategies.check_metadata(rtype, new)
            strategies.prepare_update(rtype, old, new)
            if self.validator is not None:
                self.validator(new)
        if dry_run:
            return new
        return self.write(rtype, old, new)

    def write(self, rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        """Store a changed object: no-op when nothing changed, generation bump on spec changes, and final
        removal of an object being deleted whose last finalizer went."""
        if _comparable(new) == _comparable(old):
            return old
        metadata = new.setdefault("metadata", {})
        if metadata.get("finalizers") == []:
            del metadata["finalizers"]
        if "generation" in meta(old) and _spec_of(new) != _spec_of(old):
            metadata["generation"] = meta(old)["generation"] + 1
        key = self.key(rtype, meta(old).get("namespace"), meta(old)["name"])
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers") and not still_stopping(rtype, new):
            self.store.commit(key, rtype, new)
            gone = self.store.remove(key, rtype)
            assert gone is not None
            return gone
        return self.store.commit(key, rtype, new)

    # --- delete

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any],
        *,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """Delete by the DeleteOptions; returns the object and whether it is gone (False: deletion pending)."""
        key = self.key(rtype, namespace, name)
        old = self.store.get(key)
        if old is None:
            raise not_found(rtype.plural, rtype.group, name)
        check_preconditions(rtype, name, old, options)
        policy = propagation(rtype, options)
        if dry_run:
            return old, True
        if policy == "Orphan":
            self.orphan_dependents(meta(old)["uid"])
            old = self.store.get(key) or old
        new = copy.deepcopy(old)
        metadata = new["metadata"]
        finalizers: list[str] = list(metadata.get("finalizers") or [])
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        metadata["finalizers"] = finalizers
        grace = grace_period(rtype, old, options)
        if metadata.get("deletionTimestamp"):
            if grace == 0 and rtype.key == ("", "pods"):
                metadata["deletionGracePeriodSeconds"] = 0
                if not finalizers:
                    metadata.pop("finalizers")
                    gone = self.store.remove(key, rtype)
                    assert gone is not None
                    return gone, True
            return self.write(rtype, old, drop_empty_finalizers(new)), False
        if not finalizers and grace == 0 and rtype.key != ("", "namespaces"):
            gone = self.store.remove(key, rtype)
            assert gone is not None
            return gone, True
        stamp = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=grace)
        metadata["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata["deletionGracePeriodSeconds"] = grace
        if rtype.key == ("", "namespaces"):
            new["status"] = {**(new.get("status") or {}), "phase": "Terminating"}
        stored = self.store.commit(key, rtype, drop_empty_finalizers(new))
        return stored, False

    def orphan_dependents(self, owner_uid: str) -> None:
        for key, dependent in self.store.dependents(owner_uid):
            rtype = self.catalog.get(key.group, key.plural)
            if rtype is None:
                continue
            new = copy.deepcopy(dependent)
            refs = [r for r in meta(new).get("ownerReferences") or [] if r.get("uid") != owner_uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self.store.commit(key, rtype, new)

    def delete_collection(
        self, rtype: ResourceType, namespace: str | None, items: list[dict[str, Any]], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        deleted = []
        for obj in items:
            try:
                gone, _ = self.delete(rtype, namespace or meta(obj).get("namespace"), meta(obj)["name"], options)
            except ApiError:
                continue
            deleted.append(gone)
        return deleted


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    metadata = {k: v for k, v in meta(obj).items() if k not in ("resourceVersion", "managedFields")}
    if not metadata.get("finalizers"):
        metadata.pop("finalizers", None)
    return {**obj, "metadata": metadata}


def _spec_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}
