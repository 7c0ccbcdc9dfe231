"""The control-plane loops that live beside the store in a real cluster's controller-manager: the garbage
collector (dependents of deleted owners, foreground deletion), the namespace controller (cascade, then drop
the `kubernetes` finalizer) and the quota controller (ResourceQuota status.used).

They run asynchronously, after the request that caused them has been answered, as in a real cluster:
a client that deleted a namespace sees it Terminating first and gone a moment later.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

from fakekube import admission
from fakekube.deletion import FOREGROUND
from fakekube.errors import ApiError
from fakekube.registry import Registry
from fakekube.store import Change, ObjKey, meta, owner_uids

Work = tuple[str, Any]


class Collector:
    def __init__(self, registry: Registry, delay: float = 0.0) -> None:
        self.registry = registry
        self.store = registry.store
        self.delay = delay
        self._queue: asyncio.Queue[Work] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.store.on_change(self._observe)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fakekube-collector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def idle(self) -> None:
        """Wait until every queued piece of collection work is done (for tests that want no race)."""
        await self._queue.join()

    def _observe(self, change: Change) -> None:
        key, obj = change.key, change.obj
        metadata = meta(obj)
        if change.type == "DELETED":
            uid = metadata.get("uid")
            if uid:
                self._queue.put_nowait(("dependents", (uid, "Background")))
            for owner in owner_uids(obj):
                self._queue.put_nowait(("foreground", owner))
            if key.namespace is not None:
                self._queue.put_nowait(("namespace", key.namespace))
        elif metadata.get("deletionTimestamp"):
            if FOREGROUND in (metadata.get("finalizers") or []):
                self._queue.put_nowait(("dependents", (metadata["uid"], "Foreground")))
                self._queue.put_nowait(("foreground", metadata["uid"]))
            if (key.group, key.plural) == ("", "namespaces"):
                self._queue.put_nowait(("namespace", key.name))
        if key.namespace is not None and (key.group, key.plural) != ("", "resourcequotas"):
            if self.store.items("", "resourcequotas", key.namespace):
                self._queue.put_nowait(("quota", key.namespace))
        elif (key.group, key.plural) == ("", "resourcequotas") and change.type == "ADDED" and key.namespace:
            self._queue.put_nowait(("quota", key.namespace))

    async def _run(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                if self.delay:
                    await asyncio.sleep(self.delay)
                self._do(work)
            except ApiError:
                pass  # the object changed under us; the change that did it queued its own work
            finally:
                self._queue.task_done()

    def _do(self, work: Work) -> None:
        what, arg = work
        if what == "dependents":
            self._delete_dependents(*arg)
        elif what == "foreground":
            self._release_foreground(arg)
        elif what == "namespace":
            self._sweep_namespace(arg)
        elif what == "quota":
            self._update_quotas(arg)

    def _delete_dependents(self, owner_uid: str, policy: str) -> None:
        for key, dependent in self.store.dependents(owner_uid):
            if meta(dependent).get("deletionTimestamp"):
                continue
            owner = self.store.by_uid(owner_uid)
            if owner is not None and not meta(owner).get("deletionTimestamp"):
                return  # the owner came back or was never deleted: nothing to collect
            self._delete(key, policy)

    def _delete(self, key: ObjKey, policy: str) -> None:
        rtype = self.registry.catalog.get(key.group, key.plural)
        if rtype is None:
            return
        with contextlib.suppress(ApiError):  # gone meanwhile
            self.registry.delete(rtype, key.namespace, key.name, {"propagationPolicy": policy})

    def _release_foreground(self, owner_uid: str) -> None:
        owner = self.store.by_uid(owner_uid)
        if owner is None or FOREGROUND not in (meta(owner).get("finalizers") or []):
            return
        if not meta(owner).get("deletionTimestamp"):
            return
        for _key, dependent in self.store.dependents(owner_uid):
            refs = meta(dependent).get("ownerReferences") or []
            if any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in refs):
                return
        key = self.store.key_of_uid(owner_uid)
        assert key is not None
        rtype = self.registry.catalog.get(key.group, key.plural)
        assert rtype is not None
        new = copy.deepcopy(owner)
        new["metadata"]["finalizers"] = [f for f in meta(owner)["finalizers"] if f != FOREGROUND]
        self.registry.write(rtype, owner, new)

    def _sweep_namespace(self, namespace: str) -> None:
        ns_type = self.registry.catalog.lookup("namespaces")
        ns_key = ObjKey("", "namespaces", None, namespace)
        ns = self.store.get(ns_key)
        if ns is None or not meta(ns).get("deletionTimestamp"):
            return
        for key, obj in list(self.store.in_namespace(namespace)):
            if not meta(obj).get("deletionTimestamp"):
                self._delete(key, "Background")
        if self.store.count_in_namespace(namespace) == 0:
            ns = self.store.get(ns_key)
            if ns is not None and (ns.get("spec") or {}).get("finalizers"):
                new = copy.deepcopy(ns)
                new["spec"]["finalizers"] = []
                self.registry.write(ns_type, ns, new)

    def _update_quotas(self, namespace: str) -> None:
        rtype = self.registry.catalog.lookup("resourcequotas")
        for quota in self.store.items("", "resourcequotas", namespace):
            status = admission.quota_status(self.store, quota)
            if status != quota.get("status"):
                self.registry.write(rtype, quota, {**copy.deepcopy(quota), "status": status})
