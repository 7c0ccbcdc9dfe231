"""The object store: live objects, one global resourceVersion, and the change log that watches resume from.

Every write goes through `commit` or `remove`, synchronously: in one event loop that makes each write atomic
without a lock. Stored objects are never mutated in place; a write stores a new dict, so readers may keep
references. Each version is also appended to kmock's object history, for assertions on past states.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import kmock

from fakekube.catalog import ResourceType

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class ObjKey(NamedTuple):
    group: str
    plural: str
    namespace: str | None
    name: str


@dataclass(frozen=True)
class Change:
    rv: int
    type: EventType
    key: ObjKey
    obj: dict[str, Any]
    old: dict[str, Any] | None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [ref["uid"] for ref in meta(obj).get("ownerReferences") or [] if ref.get("uid")]


class Store:
    def __init__(self, history: kmock.ObjectsArray, *, change_limit: int = 200_000) -> None:
        self._history = history
        self._by_type: dict[tuple[str, str], dict[ObjKey, dict[str, Any]]] = {}
        self._by_uid: dict[str, ObjKey] = {}
        self._per_namespace: dict[str, int] = {}
        self._dependents: dict[str, set[ObjKey]] = {}
        self._changes: list[Change] = []
        self._change_limit = change_limit
        self._compacted = 0
        self._rv = 0
        self._wake = asyncio.Event()
        self._hooks: list[Callable[[Change], None]] = []
        self.closed = False

    # --- reading

    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, key: ObjKey) -> dict[str, Any] | None:
        return self._by_type.get((key.group, key.plural), {}).get(key)

    def by_uid(self, uid: str) -> dict[str, Any] | None:
        key = self._by_uid.get(uid)
        return None if key is None else self.get(key)

    def key_of_uid(self, uid: str) -> ObjKey | None:
        return self._by_uid.get(uid)

    def items(self, group: str, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        objects = self._by_type.get((group, plural), {})
        if namespace is None:
            return list(objects.values())
        return [obj for key, obj in objects.items() if key.namespace == namespace]

    def count_in_namespace(self, namespace: str) -> int:
        return self._per_namespace.get(namespace, 0)

    def in_namespace(self, namespace: str) -> Iterator[tuple[ObjKey, dict[str, Any]]]:
        for objects in self._by_type.values():
            for key, obj in list(objects.items()):
                if key.namespace == namespace:
                    yield key, obj

    def dependents(self, uid: str) -> list[tuple[ObjKey, dict[str, Any]]]:
        found = []
        for key in self._dependents.get(uid, ()):
            obj = self.get(key)
            if obj is not None:
                found.append((key, obj))
        return found

    # --- writing

    def on_change(self, hook: Callable[[Change], None]) -> None:
        """Call `hook` after every committed change (garbage collection, quota usage)."""
        self._hooks.append(hook)

    def commit(self, key: ObjKey, rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` under a new resourceVersion and tell the watches; returns the stored object."""
        old = self.get(key)
        self._rv += 1
        metadata = dict(meta(obj))
        metadata["resourceVersion"] = str(self._rv)
        stored = {"apiVersion": rtype.api_version, "kind": rtype.kind, **obj, "metadata": metadata}
        self._by_type.setdefault((key.group, key.plural), {})[key] = stored
        uid = metadata.get("uid")
        if uid:
            self._by_uid[uid] = key
        self._index_owners(key, old, stored)
        if old is None and key.namespace is not None:
            self._per_namespace[key.namespace] = self._per_namespace.get(key.namespace, 0) + 1
        self._record(Change(self._rv, "MODIFIED" if old is not None else "ADDED", key, stored, old), rtype)
        return stored

    def remove(self, key: ObjKey, rtype: ResourceType) -> dict[str, Any] | None:
        old = self.get(key)
        if old is None:
            return None
        self._rv += 1
        gone = {**old, "metadata": {**meta(old), "resourceVersion": str(self._rv)}}
        del self._by_type[(key.group, key.plural)][key]
        self._by_uid.pop(meta(old).get("uid", ""), None)
        self._index_owners(key, old, None)
        if key.namespace is not None:
            self._per_namespace[key.namespace] -= 1
        self._record(Change(self._rv, "DELETED", key, gone, old), rtype)
        return gone

    def _index_owners(self, key: ObjKey, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for uid in owner_uids(old or {}):
            self._dependents.get(uid, set()).discard(key)
        for uid in owner_uids(new or {}):
            self._dependents.setdefault(uid, set()).add(key)

    def _record(self, change: Change, rtype: ResourceType) -> None:
        self._changes.append(change)
        if len(self._changes) > self._change_limit:
            drop = len(self._changes) // 2
            self._compacted = self._changes[drop - 1].rv
            del self._changes[:drop]
        self._write_history(change, rtype)
        for hook in self._hooks:
            hook(change)
        self.notify()

    def _write_history(self, change: Change, rtype: ResourceType) -> None:
        hkey = (kmock.resource(rtype.group, rtype.version, rtype.plural), change.key.namespace, change.key.name)
        if change.type == "DELETED":
            self._history[hkey].delete()
        elif hkey in self._history:
            self._history[hkey].history.append(change.obj)
        else:
            self._history[hkey] = change.obj

    # --- watching

    def compact(self) -> None:
        """Forget the change log, as etcd compaction does: older resourceVersions then answer 410 Gone."""
        if self._changes:
            self._compacted = self._changes[-1].rv
            self._changes.clear()

    def changes_since(self, rv: int) -> list[Change]:
        """Changes after `rv`; raises LookupError when they were compacted away."""
        if rv < self._compacted:
            raise LookupError(f"too old resource version: {rv} ({self._compacted})")
        start = bisect.bisect_right(self._changes, rv, key=lambda c: c.rv)
        return self._changes[start:]

    def waiter(self) -> asyncio.Event:
        """An event set by the next change; take it before reading, so no change slips in between."""
        return self._wake

    async def wait(self, waiter: asyncio.Event, timeout: float) -> None:
        """Return when `waiter` fires, after `timeout` seconds, or when the store closes."""
        if self.closed:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wait(), timeout)

    def notify(self) -> None:
        """Wake every waiter without a change: new log lines for the pods/log followers."""
        self._wake.set()
        self._wake = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self._wake.set()
