"""The ports a per-consumer WorkflowApi uses, answered by the tenant gateway over HTTP (tenant_gateway).

Such a WorkflowApi holds no server credential: only the gateway's URL and its deployment's token. The gateway
scopes every answer to the deployment's consumer; these adapters only translate calls to its routes and back.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from events.envelope import Envelope
from ports.objects import StoredObject
from ports.queries import Page, PageKey, RunFilter
from ports.store import Outcome, TransitionResult
from schemas.assets import StoredAsset
from schemas.documents import StatefulDocument
from schemas.inputs import InputDocument
from schemas.provisioning import AccessGrantDocument
from schemas.run import RunDocument, RunRequestRecord
from schemas.tenant_gateway import kind_name

D = TypeVar("D", bound=StatefulDocument)
T = TypeVar("T", bound=StatefulDocument)

_CHUNK = 1024 * 1024


class GatewayError(Exception):
    """The gateway refused or failed a call the WorkflowApi made (its token revoked, the gateway away)."""


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    raise GatewayError(f"tenant gateway: {response.request.method} {response.request.url.path}: {response.status_code}")


def _key(found: Mapping[str, Any] | None) -> PageKey | None:
    return PageKey(datetime.fromisoformat(found["created_at"]), found["id"]) if found else None


def _after(after: PageKey | None) -> dict[str, str]:
    return {"after_created_at": after.created_at.isoformat(), "after_id": after.id} if after else {}


def _object(found: Mapping[str, Any]) -> StoredObject:
    return StoredObject(found["key"], int(found["size"]), found.get("sha256"), found.get("content_type"))


class TenantGateway:
    """One HTTP client for all the ports below."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, read=None),
        )

    async def health(self) -> str:
        try:
            response = await self.http.get("/readyz", timeout=2.0)
        except httpx.HTTPError as error:
            return f"unreachable: {type(error).__name__}"
        return "ok" if response.status_code == 200 else f"not ready ({response.status_code})"

    async def close(self) -> None:
        await self.http.aclose()

    async def get_json(self, path: str, **params: Any) -> Any | None:
        response = await self.http.get(path, params=params)
        if response.status_code == 404:
            return None
        return _check(response).json()

    async def post_json(self, path: str, body: Any) -> Any:
        response = _check(await self.http.post(path, json=body))
        return response.json() if response.content else None


class GatewayStore:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def get(self, kind: type[D], doc_id: str) -> D | None:
        found = await self.gateway.get_json(f"/v1/documents/{kind_name(kind)}/{quote(doc_id, safe='')}")
        return None if found is None else kind.model_validate(found)

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]:
        # The gateway answers only its tenant's: a consumer_id filter is implied.
        unknown = set(equals) - {"consumer_id", "transfer_process_id"}
        if unknown:
            raise GatewayError(f"the tenant gateway filters by no {sorted(unknown)}")
        params: dict[str, Any] = {"limit": limit, "oldest_first": oldest_first}
        if states:
            params["states"] = states
        if "transfer_process_id" in equals:
            params["transfer_process_id"] = equals["transfer_process_id"]
        found = await self.gateway.get_json(f"/v1/documents/{kind_name(kind)}", **params)
        return [kind.model_validate(item) for item in found or []]

    async def create(self, doc: StatefulDocument, *, event_id: str) -> bool:
        if not isinstance(doc, InputDocument):
            raise GatewayError(f"the tenant gateway creates no {type(doc).__name__}")
        body = {"document": doc.model_dump(mode="json", by_alias=True), "event_id": event_id}
        return bool((await self.gateway.post_json("/v1/inputs", body))["created"])

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        if kind is not InputDocument:
            raise GatewayError(f"the tenant gateway changes no {kind.__name__}")
        body = {"to": to, "event_id": event_id, "reason": reason, "fields": dict(fields or {})}
        answer = await self.gateway.post_json(f"/v1/inputs/{quote(doc_id, safe='')}/transition", body)
        return TransitionResult(Outcome(answer["outcome"]), answer.get("state"))


class GatewayQueries:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def grant_by_token(self, token_sha256: str) -> AccessGrantDocument | None:
        found = await self.gateway.get_json(f"/v1/grants/{quote(token_sha256, safe='')}")
        return None if found is None else AccessGrantDocument.model_validate(found)

    async def runs(
        self, consumer_id: str, filters: RunFilter, *, after: PageKey | None, limit: int
    ) -> Page[RunDocument]:
        params: dict[str, Any] = {"limit": limit, **_after(after)}
        if filters.state:
            params["state"] = filters.state
        if filters.asset_id:
            params["asset_id"] = filters.asset_id
        if filters.since:
            params["since"] = filters.since.isoformat()
        return self._page(RunDocument, await self.gateway.get_json("/v1/queries/runs", **params))

    async def inputs(self, consumer_id: str, *, after: PageKey | None, limit: int) -> Page[InputDocument]:
        found = await self.gateway.get_json("/v1/queries/inputs", limit=limit, **_after(after))
        return self._page(InputDocument, found)

    @staticmethod
    def _page(kind: type[T], found: Any) -> Page[T]:
        found = found or {"items": [], "next": None}
        return Page([kind.model_validate(item) for item in found["items"]], _key(found.get("next")))


class GatewayRecords:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def record_run_request(self, request: RunRequestRecord) -> RunRequestRecord:
        stored = await self.gateway.post_json("/v1/run-requests", request.model_dump(mode="json", by_alias=True))
        return RunRequestRecord.model_validate(stored)

    async def run_request(self, run_id: str) -> RunRequestRecord | None:
        found = await self.gateway.get_json(f"/v1/run-requests/{quote(run_id, safe='')}")
        return None if found is None else RunRequestRecord.model_validate(found)

    async def delete_input(self, input_id: str) -> None:
        _check(await self.gateway.http.delete(f"/v1/inputs/{quote(input_id, safe='')}"))


class GatewayObjects:
    """Bytes stream through the gateway both ways: this process never talks to the object store."""

    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> StoredObject:
        headers = {"Content-Type": content_type or "application/octet-stream"}
        if sha256:
            headers["X-Checksum-Sha256"] = sha256
        response = await self.gateway.http.put(
            "/v1/objects/content", params={"key": key}, content=_passed(chunks), headers=headers
        )
        return _object(_check(response).json())

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(block)
        return await self.put_stream(key, _file_chunks(path), content_type=content_type, sha256=digest.hexdigest())

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        return await self.put_stream(
            key, _one(data), content_type=content_type, sha256=hashlib.sha256(data).hexdigest()
        )

    async def get_bytes(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.read_range(key)])

    async def get_file(self, key: str, path: Path) -> int:
        size = 0
        with path.open("wb") as handle:
            async for chunk in self.read_range(key):
                handle.write(chunk)
                size += len(chunk)
        return size

    async def list(self, prefix: str) -> list[StoredObject]:
        return [_object(o) for o in await self.gateway.get_json("/v1/objects/list", prefix=prefix) or []]

    async def head(self, key: str) -> StoredObject | None:
        found = await self.gateway.get_json("/v1/objects/head", key=key)
        return None if found is None else _object(found)

    async def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        params: dict[str, Any] = {"key": key, "start": start}
        if end is not None:
            params["end"] = end
        async with self.gateway.http.stream("GET", "/v1/objects/content", params=params) as response:
            if not response.is_success:
                await response.aread()
                _check(response)
            async for chunk in response.aiter_bytes():
                yield chunk

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self.gateway.post_json("/v1/objects/delete", {"keys": list(keys)})

    async def presigned_url(
        self,
        method: str,
        key: str,
        *,
        expires_seconds: int,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> str:
        body = {
            "method": method,
            "key": key,
            "expires_seconds": expires_seconds,
            "content_type": content_type,
            "sha256": sha256,
        }
        return str((await self.gateway.post_json("/v1/objects/presign", body))["url"])


async def _passed(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            yield block


class GatewayEvents:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def publish(self, event: Envelope[Any]) -> None:
        await self.gateway.post_json("/v1/events", event.model_dump(mode="json", by_alias=True))


class GatewayCatalogue:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def version(self, asset_id: str, version: int) -> StoredAsset | None:
        found = await self.gateway.get_json(f"/v1/assets/{quote(asset_id, safe='')}/versions/{version}")
        return None if found is None else StoredAsset.model_validate(found)


class GatewayLeases:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> bool:
        answer = await self.gateway.post_json(
            f"/v1/leases/{quote(name, safe=':')}", {"holder": holder, "ttl_seconds": ttl_seconds}
        )
        return bool(answer["held"])


class GatewayLogs:
    def __init__(self, gateway: TenantGateway) -> None:
        self.gateway = gateway

    async def read(self, run_id: str, *, offset: int = 0, idle_seconds: float = 0.3) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(self.follow(run_id, offset=offset, idle_seconds=idle_seconds)) as chunks:
            async for chunk in chunks:
                if chunk is None:
                    return
                yield chunk

    async def follow(self, run_id: str, *, offset: int = 0, idle_seconds: float) -> AsyncGenerator[bytes | None, None]:
        params = {"offset": offset, "idle_seconds": max(0.05, min(idle_seconds, 10.0))}
        async with self.gateway.http.stream("GET", f"/v1/logs/{quote(run_id, safe='')}", params=params) as response:
            if not response.is_success:
                await response.aread()
                _check(response)
            buffer = b""
            async for data in response.aiter_bytes():
                buffer += data
                while True:
                    head, newline, rest = buffer.partition(b"\n")
                    if not newline:
                        break
                    size = int(head)
                    if len(rest) < size:
                        break
                    chunk, buffer = rest[:size], rest[size:]
                    yield chunk if size else None
