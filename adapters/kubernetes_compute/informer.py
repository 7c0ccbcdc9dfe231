"""A cluster-wide, label-selected cache of one kind of object, kept current by list and watch.

The watcher asks for every active run's status on every pass; answered from this cache, a pass costs no API
call however many runs there are. A watch resumes from the last resourceVersion it saw; when that version
is gone (410) or the connection fails, the cache is marked unsynced (callers read the API meanwhile) and
is rebuilt from a fresh list.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import structlog
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiException

log = structlog.get_logger("gxwf.kubernetes.informer")

Key = tuple[str, str]


class Informer:
    def __init__(
        self,
        list_all: Callable[..., Awaitable[Any]],
        selector: str,
        plain: Callable[[Any], dict[str, Any]],
        *,
        watch_seconds: int = 300,
        retry_seconds: float = 1.0,
        index: Callable[[dict[str, Any]], Hashable] | None = None,
    ) -> None:
        self.list_all = list_all
        self.selector = selector
        self.plain = plain
        self.watch_seconds = watch_seconds
        self.retry_seconds = retry_seconds
        self.items: dict[Key, dict[str, Any]] = {}
        # Objects grouped by `index(obj)` (e.g. a run's attempt), so a lookup does not scan every object.
        self._index = index
        self._by_index: dict[Hashable, dict[Key, dict[str, Any]]] = {}
        self.synced = asyncio.Event()
        self.relists = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.selector}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.synced.clear()

    def values(self) -> list[dict[str, Any]]:
        return list(self.items.values())

    def indexed(self, value: Hashable) -> list[dict[str, Any]]:
        return list(self._by_index.get(value, {}).values())

    def _put(self, obj: dict[str, Any]) -> None:
        key = _key(obj)
        self._drop(key)
        self.items[key] = obj
        if self._index is not None:
            self._by_index.setdefault(self._index(obj), {})[key] = obj

    def _drop(self, key: Key) -> None:
        old = self.items.pop(key, None)
        if old is not None and self._index is not None:
            group = self._by_index.get(self._index(old))
            if group is not None:
                group.pop(key, None)
                if not group:
                    self._by_index.pop(self._index(old), None)

    async def _run(self) -> None:
        while True:
            try:
                version = await self._list()
                while True:
                    version = await self._watch(version)
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                self.synced.clear()
                if error.status == 410:
                    continue  # the version we had is compacted away: list afresh, now
                log.warning("watch failed; listing again", selector=self.selector, status=error.status)
            except Exception as error:  # a dropped connection, a server restarting
                self.synced.clear()
                log.warning("watch failed; listing again", selector=self.selector, error=repr(error))
            await asyncio.sleep(self.retry_seconds)

    async def _list(self) -> str:
        listed = await self.list_all(label_selector=self.selector)
        self.items, self._by_index = {}, {}
        for obj in listed.items:
            self._put(self.plain(obj))
        self.relists += 1
        self.synced.set()
        return str(listed.metadata.resource_version)

    async def _watch(self, version: str) -> str:
        """One watch request, until the server ends it; returns the version to resume from."""
        watcher = watch.Watch()
        async with watcher.stream(
            self.list_all, label_selector=self.selector, resource_version=version, timeout_seconds=self.watch_seconds
        ) as stream:
            async for event in stream:
                plain = self.plain(event["object"])
                if event["type"] == "DELETED":
                    self._drop(_key(plain))
                else:
                    self._put(plain)
                version = str(plain["metadata"].get("resourceVersion") or version)
        return version


def _key(obj: dict[str, Any]) -> Key:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")
