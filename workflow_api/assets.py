"""GET /v1/assets and /v1/assets/{id}: the asset versions offered to this consumer, with what a run takes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from schemas.assets import FileInput, ParameterInput, StoredAsset
from workflow_api.auth import AUTHENTICATED, api, visible_assets
from workflow_api.context import ApiContext
from workflow_api.models import AssetDetail, AssetInput, AssetOutput, AssetPage, AssetSummary
from workflow_api.pagination import Cursor, Limit
from workflow_api.principals import Principal
from workflow_api.problems import Problem, invalid, not_found, responses

router = APIRouter(prefix="/v1/assets", tags=["assets"])


def parameter_schema(asset: StoredAsset) -> dict[str, Any]:
    """JSON Schema of the `parameters` object a run start of this asset may carry."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for item in asset.definition.inputs:
        if not isinstance(item, ParameterInput):
            continue
        prop: dict[str, Any] = {"type": item.type}
        if item.default is not None:
            prop["default"] = item.default
        if item.minimum is not None:
            prop["minimum"] = item.minimum
        if item.maximum is not None:
            prop["maximum"] = item.maximum
        if item.choices is not None:
            prop["enum"] = item.choices
        if item.description:
            prop["description"] = item.description
        properties[item.name] = prop
        if item.required and item.default is None:
            required.append(item.name)
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def summary(asset: StoredAsset) -> AssetSummary:
    d = asset.definition
    return AssetSummary(
        id=asset.asset_id,
        version=asset.version,
        title=d.title,
        description=d.description,
        cpu=d.resources.cpu,
        memory=d.resources.memory,
        gpu=d.resources.gpu,
    )


def detail(asset: StoredAsset) -> AssetDetail:
    d = asset.definition
    return AssetDetail(
        **summary(asset).model_dump(),
        inputs=[
            AssetInput(name=i.name, kind=i.kind, required=i.required, path=i.path, description=i.description)
            for i in d.inputs
            if isinstance(i, FileInput)
        ],
        parameters=parameter_schema(asset),
        outputs=[AssetOutput(name=o.name, path=o.path, description=o.description) for o in d.outputs],
        time_limits={
            "pending_seconds": d.time_limits.pending_seconds,
            "running_seconds": d.time_limits.running_seconds,
        },
        max_attempts=d.retry.max_attempts,
    )


async def resolve(context: ApiContext, principal: Principal, asset_id: str, version: int | None) -> StoredAsset:
    """The asset version this consumer may use: the one asked for, or the newest offered to it; 404 otherwise."""
    offered = sorted(v for a, v in await visible_assets(context, principal) if a == asset_id)
    if not offered or (version is not None and version not in offered):
        shown = asset_id if version is None else f"{asset_id} version {version}"
        raise not_found("asset", shown)
    stored = await context.catalogue.version(asset_id, version or offered[-1])
    if stored is None:
        raise not_found("asset", asset_id)
    return stored


@router.get("", summary="The assets offered to you", response_model=AssetPage, responses=responses(401, 403, 422))
async def list_assets(
    request: Request, limit: int = Limit, cursor: str | None = Cursor, principal: Principal = AUTHENTICATED
) -> AssetPage:
    principal.require_active("list assets")
    context = api(request)
    keys = sorted(await visible_assets(context, principal))
    if cursor is not None:
        name, _, number = cursor.rpartition("@")
        if not name or not number.isdigit():
            raise invalid("cursor", "not a cursor this API gave out; use the `next` link as it is")
        keys = [k for k in keys if k > (name, int(number))]
    items: list[AssetSummary] = []
    for asset_id, version in keys[:limit]:
        stored = await context.catalogue.version(asset_id, version)
        if stored is not None:
            items.append(summary(stored))
    next_url = None
    if len(keys) > limit:
        asset_id, version = keys[limit - 1]
        next_url = f"{request.url.path}?limit={limit}&cursor={asset_id}@{version}"
    return AssetPage(items=items, next=next_url)


@router.get(
    "/{asset_id}",
    summary="One asset: its inputs, parameter schema and outputs",
    response_model=AssetDetail,
    responses=responses(401, 403, 404, 422),
)
async def get_asset(
    asset_id: str,
    request: Request,
    version: int | None = Query(None, ge=1, description="Default: the newest version offered to you"),
    principal: Principal = AUTHENTICATED,
) -> AssetDetail:
    principal.require_active("describe assets")
    if version is not None and version > 2**31:
        raise Problem(404, "not-found", f"no asset {asset_id} version {version}")
    return detail(await resolve(api(request), principal, asset_id, version))
