"""The fake controller's own small API client: JSON over aiohttp, and informers (list, then watch with resume).

Everything the controller changes goes through the API like a real kubelet's or controller-manager's
writes, so a client under test sees the same resourceVersions and watch events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from fakekube.calls import CONTROLLER_AGENT

log = logging.getLogger(__name__)
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"


class ClientError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body.get('message') if isinstance(body, dict) else body}")
        self.status = status
        self.body = body

    @property
    def message(self) -> str:
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else str(self.body)


def path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    if name:
        base += f"/{name}"
    if sub:
        base += f"/{sub}"
    return base


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(headers={"User-Agent": f"{CONTROLLER_AGENT}/1"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "open() first"
        return self._session

    async def request(
        self, method: str, where: str, body: Any = None, *, content_type: str = "application/json", **params: str
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type}
        async with self.session.request(method, self.url + where, data=data, headers=headers, params=params) as resp:
            text = await resp.text()
            parsed: Any = json.loads(text) if text and resp.content_type == "application/json" else text
            if resp.status >= 400:
                raise ClientError(resp.status, parsed)
            return parsed

    async def get(self, where: str) -> Any:
        return await self.request("GET", where)

    async def create(self, where: str, body: Any) -> Any:
        return await self.request("POST", where, body)

    async def patch(self, where: str, body: Any, content_type: str = MERGE) -> Any:
        return await self.request("PATCH", where, body, content_type=content_type)

    async def delete(self, where: str, body: Any = None) -> Any:
        return await self.request("DELETE", where, body)

    async def append_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        where = f"/fakekube/v1/namespaces/{namespace}/pods/{pod}/log"
        async with self.session.post(self.url + where, data=text.encode(), params={"container": container}) as resp:
            await resp.read()


Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class Informer:
    """A local cache of one resource kept current by list+watch; calls `handler(type, obj)` on every event."""

    def __init__(self, client: Client, where: str, handler: Handler) -> None:
        self.client = client
        self.where = where
        self.handler = handler
        self.cache: dict[tuple[str, str], dict[str, Any]] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """List and watch until cancelled; a failed connection or a 410 Gone relists after a pause."""
        while True:
            try:
                await self._list_and_watch()
            except (aiohttp.ClientError, ClientError, ValueError, KeyError) as exc:
                log.warning("informer %s: %r; relisting", self.where, exc)
                await asyncio.sleep(0.05)

    async def _list_and_watch(self) -> None:
        while True:
            listing = await self.client.get(self.where)
            rv = listing["metadata"]["resourceVersion"]
            seen = set()
            for obj in listing["items"]:
                seen.add(_key(obj))
                await self._deliver("ADDED" if _key(obj) not in self.cache else "MODIFIED", obj)
            for key in [k for k in self.cache if k not in seen]:
                await self._deliver("DELETED", self.cache[key])
            self.synced.set()
            with contextlib.suppress(_Expired):
                while True:
                    rv = await self._watch(rv)

    async def _watch(self, rv: str) -> str:
        params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": "60", "allowWatchBookmarks": "true"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.client.session.get(self.client.url + self.where, params=params, timeout=timeout) as resp:
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    raise _Expired
                rv = event["object"]["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    await self._deliver(event["type"], event["object"])
        return rv

    async def _deliver(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.cache.pop(_key(obj), None)
        else:
            self.cache[_key(obj)] = obj
        result = self.handler(kind, obj)
        if result is not None:
            await result

    def items(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [o for (ns, _), o in self.cache.items() if namespace is None or ns == namespace]


class _Expired(Exception):
    pass


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")
