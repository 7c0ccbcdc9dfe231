"""/v1/objects: the object store under the tenant's prefixes only (inputs/<consumer>/, results/<consumer>/).

Bytes pass through here both ways, so a WorkflowApi never needs to reach the object store itself (nor hold a
credential for it); presigned URLs are issued only for the consumer's own downloads and uploads, short-lived.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from ports.objects import StoredObject
from tenant_gateway.auth import TENANT, gateway
from tenant_gateway.body import capped, json_body
from tenant_gateway.tenancy import Tenant, check_key, check_prefix, invalid, not_found

router = APIRouter(prefix="/v1/objects", tags=["objects"])

Key = Annotated[str, Query(min_length=1, max_length=1024)]


def _info(found: StoredObject) -> dict[str, Any]:
    return {"key": found.key, "size": found.size, "sha256": found.sha256, "content_type": found.content_type}


@router.get("/head", summary="An object's size, sha256 and type")
async def head(key: Key, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    found = await gateway(request).objects.head(check_key(tenant, key))
    if found is None:
        raise not_found("object", key)
    return _info(found)


@router.get("/list", summary="The objects under one of the tenant's input or run prefixes")
async def listing(prefix: Key, request: Request, tenant: Tenant = TENANT) -> list[dict[str, Any]]:
    return [_info(o) for o in await gateway(request).objects.list(check_prefix(tenant, prefix))]


class Keys(BaseModel):
    keys: list[str] = Field(max_length=10_000)


@router.post("/delete", status_code=204, summary="Delete objects of the tenant")
async def delete(request: Request, tenant: Tenant = TENANT) -> Response:
    context = gateway(request)
    # A listing of a large directory input: the one JSON body allowed more than the usual limit.
    body = await json_body(request, Keys, 16 * context.settings.tenant_gateway_body_limit_bytes)
    keys = [check_key(tenant, key, "keys", writing=True) for key in body.keys]
    await context.objects.delete(keys)
    return Response(status_code=204)


@router.put("/content", summary="Write an object of the tenant from the body, streamed")
async def put(key: Key, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    context = gateway(request)
    check_key(tenant, key, writing=True)
    claimed = request.headers.get("x-checksum-sha256") or None
    media = request.headers.get("content-type") or None
    stored = await context.objects.put_stream(
        key,
        capped(request, context.settings.tenant_gateway_upload_limit_bytes),
        content_type=media,
        sha256=claimed,
    )
    return _info(stored)


@router.get("/content", summary="Read an object of the tenant (a byte range of it), streamed")
async def get(
    key: Key,
    request: Request,
    start: Annotated[int, Query(ge=0)] = 0,
    end: Annotated[int | None, Query(ge=0)] = None,
    tenant: Tenant = TENANT,
) -> StreamingResponse:
    context = gateway(request)
    found = await context.objects.head(check_key(tenant, key))
    if found is None:
        raise not_found("object", key)
    if end is not None and end < start:
        raise invalid("end", "at least start")
    return StreamingResponse(context.objects.read_range(key, start, end), media_type="application/octet-stream")


class Presign(BaseModel):
    method: Literal["GET", "PUT"]
    key: str = Field(min_length=1, max_length=1024)
    expires_seconds: int = Field(ge=1)
    content_type: str | None = Field(default=None, max_length=200)
    # A PUT's announced sha256 (hex): signed into the URL, so the object store refuses other bytes.
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


@router.post("/presign", summary="A short-lived URL for the consumer to GET or PUT one object of its own")
async def presign(request: Request, tenant: Tenant = TENANT) -> dict[str, str]:
    context = gateway(request)
    body = await json_body(request, Presign, context.settings.tenant_gateway_body_limit_bytes)
    key = check_key(tenant, body.key, "key", writing=body.method == "PUT")
    seconds = min(body.expires_seconds, context.settings.tenant_gateway_presign_max_seconds)
    url = await context.objects.presigned_url(
        body.method, key, expires_seconds=seconds, content_type=body.content_type, sha256=body.sha256
    )
    return {"url": url}
