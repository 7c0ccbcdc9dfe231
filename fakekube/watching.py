"""Watch streams: the initial state, then every change after a resourceVersion, filtered by selection.

A watch resumes from any resourceVersion still in the store's change log, so a client that lists, then
watches from the list's version, misses nothing and sees nothing twice; an older version is 410 Gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from fakekube import paths
from fakekube.catalog import ResourceType
from fakekube.errors import ApiError, bad_request, gone
from fakekube.selectors import field_matcher, label_matcher
from fakekube.store import Change, Store

DEFAULT_TIMEOUT = 1800.0  # seconds; a real apiserver picks 30 to 60 minutes


async def events(
    store: Store, rtype: ResourceType, namespace: str | None, name: str | None, query: Mapping[str, str]
) -> AsyncIterator[dict[str, Any]]:
    """The events of one watch request, until its timeoutSeconds pass or the store closes."""
    by_label = label_matcher(query.get("labelSelector"))
    by_field = field_matcher(query.get("fieldSelector"))
    by_name = field_matcher(f"metadata.name={name}" if name is not None else None)  # GET .../pods/x?watch
    timeout = float(query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    bookmarks = paths.is_true(query.get("allowWatchBookmarks"))
    since = query.get("resourceVersion")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def matches(obj: dict[str, Any] | None) -> bool:
        return obj is not None and by_label(obj) and by_field(obj) and by_name(obj)

    waiter = store.waiter()
    if since in (None, "", "0") or paths.is_true(query.get("sendInitialEvents")):
        cursor = store.resource_version
        for obj in store.items(rtype.group, rtype.plural, namespace):
            if matches(obj):
                yield {"type": "ADDED", "object": obj}
        if bookmarks and paths.is_true(query.get("sendInitialEvents")):
            yield bookmark(rtype, cursor, initial_end=True)
    else:
        try:
            cursor = int(since)
        except ValueError:
            yield error(bad_request(f"invalid resource version: {since!r}"))
            return
    while not store.closed:
        try:
            changes = store.changes_since(cursor)
        except LookupError as exc:
            yield error(gone(str(exc)))
            return
        for change in changes:
            cursor = change.rv
            if change.key.group != rtype.group or change.key.plural != rtype.plural:
                continue
            if namespace is not None and change.key.namespace != namespace:
                continue
            event = seen_as(change, matches)
            if event is not None:
                yield event
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await store.wait(waiter, remaining)
        waiter = store.waiter()
    if bookmarks:
        yield bookmark(rtype, cursor)


def seen_as(change: Change, matches: Callable[[dict[str, Any] | None], bool]) -> dict[str, Any] | None:
    """The event a selective watch sees: an object entering the selection is ADDED, leaving it DELETED."""
    now_in = matches(change.obj) if change.type != "DELETED" else False
    was_in = matches(change.old) if change.type != "ADDED" else False
    if change.type == "DELETED":
        return {"type": "DELETED", "object": change.obj} if was_in else None
    if now_in and was_in:
        return {"type": "MODIFIED", "object": change.obj}
    if now_in:
        return {"type": "ADDED", "object": change.obj}
    if was_in:
        return {"type": "DELETED", "object": change.obj}
    return None


def bookmark(rtype: ResourceType, rv: int, *, initial_end: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"type": "BOOKMARK", "object": {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": metadata}}


def error(exc: ApiError) -> dict[str, Any]:
    return {"type": "ERROR", "object": exc.status()}
