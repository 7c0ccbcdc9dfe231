"""/v1/events, /v1/leases, /v1/assets, /v1/logs: the commands a WorkflowApi sends, its download leases, the
catalogue it checks starts against, and its runs' live logs, each for the tenant's own runs only."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from events import subjects as s
from events.envelope import Envelope
from events.payloads.run import RunRequested, RunStopRequested
from http_serving.problems import ProblemDetails
from schemas.names import result_download_lease
from schemas.provisioning import (
    AccessGrantDocument,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
    ResultDocument,
)
from schemas.run import RunDocument
from tenant_gateway.auth import TENANT, gateway
from tenant_gateway.body import capped, invalid_body, json_body
from tenant_gateway.context import GatewayContext
from tenant_gateway.tenancy import Tenant, forbidden, invalid, not_found

router = APIRouter(prefix="/v1", tags=["commands"])

# The commands a WorkflowApi publishes, and nothing else: what it may ask of the handlers.
COMMANDS: dict[str, type[RunRequested] | type[RunStopRequested]] = {
    s.RUN_REQUESTED: RunRequested,
    s.RUN_STOP_REQUESTED: RunStopRequested,
}
# Where the WorkflowApi's commands say they come from (workflow_api.context.SOURCE).
SOURCE = "urn:gaiax-workflows:workflow-api"


class EventType(BaseModel):
    type: str = Field(max_length=200)


async def _run_of_other(context: GatewayContext, tenant: Tenant, run_id: str) -> bool:
    """Whether the run id is known as another consumer's (a run, a result, or a recorded start)."""
    run = await context.store.get(RunDocument, run_id)
    result = await context.store.get(ResultDocument, run_id)
    if any(doc is not None and doc.consumer_id != tenant.consumer_id for doc in (run, result)):
        return True
    started = await context.records.run_request(run_id)
    return started is not None and started.consumer_id != tenant.consumer_id


async def _owned_run(context: GatewayContext, tenant: Tenant, run_id: str) -> None:
    """404 unless the run (or its recorded start) is the tenant's."""
    run = await context.store.get(RunDocument, run_id)
    if run is not None:
        if run.consumer_id == tenant.consumer_id:
            return
        raise not_found("run", run_id)
    started = await context.records.run_request(run_id)
    if started is None or started.consumer_id != tenant.consumer_id:
        raise not_found("run", run_id)


async def _check_start(context: GatewayContext, tenant: Tenant, command: RunRequested) -> None:
    """A start names one of the tenant's transfers, an asset version offered to the tenant, and a site one of its
    WorkflowApis was placed on: what the WorkflowApi itself would have put there."""
    if command.transfer_process_id is not None:
        grant = await context.store.get(AccessGrantDocument, command.transfer_process_id)
        if grant is None or grant.consumer_id != tenant.consumer_id:
            raise forbidden("data.transfer_process_id", "not a transfer of this consumer")
    offered: set[tuple[str | None, int | None]] = set()
    sites: set[str | None] = set()
    for provision in await context.store.find(
        ProvisionDocument, consumer_id=tenant.consumer_id, states=[ProvisionState.GRANTED]
    ):
        offered.add((provision.asset_id, provision.asset_version))
    for deployment in await context.store.find(
        DeploymentDocument, consumer_id=tenant.consumer_id, states=[DeploymentState.READY]
    ):
        sites.add(deployment.site)
        offered |= {(item.get("asset_id"), item.get("version")) for item in deployment.registered_assets}
    if (command.asset_id, command.asset_version) not in offered:
        raise forbidden("data.asset_id", f"{command.asset_id}@{command.asset_version} is not offered to this consumer")
    if command.site is not None and command.site not in sites:
        raise forbidden("data.site", "not a site this consumer's WorkflowApi was placed on")


@router.post("/events", status_code=202, summary="Publish a run start or stop of the tenant")
async def publish(request: Request, tenant: Tenant = TENANT) -> Response:
    context = gateway(request)
    limit = context.settings.tenant_gateway_body_limit_bytes
    raw = b"".join([chunk async for chunk in capped(request, limit)])
    try:
        kind = COMMANDS.get(EventType.model_validate_json(raw).type)
    except ValidationError as error:
        raise invalid_body(error.errors()) from None
    if kind is None:
        raise invalid("type", f"only {sorted(COMMANDS)}")
    try:
        event = Envelope[kind].model_validate_json(raw)  # type: ignore[valid-type]
    except ValidationError as error:
        raise invalid_body(error.errors()) from None
    command: RunRequested | RunStopRequested = event.data
    if command.consumer_id != tenant.consumer_id:
        raise forbidden("data.consumer_id", "a command for another consumer")
    if await _run_of_other(context, tenant, command.run_id):
        raise forbidden("data.run_id", "a run of another consumer")
    if isinstance(command, RunRequested):
        await _check_start(context, tenant, command)
    # Built again from what was checked: no attribute the check did not see travels on.
    checked = Envelope[kind](  # type: ignore[valid-type]
        id=event.id,
        type=event.type,
        subject=command.run_id,
        correlationid=command.run_id,
        source=SOURCE,
        time=event.time,
        data=command,
    )
    try:
        async with asyncio.timeout(context.settings.tenant_gateway_publish_timeout_seconds):
            await context.events.publish(checked)
    except Exception:
        raise ProblemDetails(
            503, "bus-unavailable", None, "the command could not be stored durably; retry", headers={"Retry-After": "2"}
        ) from None
    return Response(status_code=202)


class Hold(BaseModel):
    holder: str = Field(min_length=1, max_length=200)
    ttl_seconds: float = Field(gt=0)


@router.post("/leases/{name:path}", summary="Take or renew a result download lease on a run of the tenant")
async def hold(name: str, request: Request, tenant: Tenant = TENANT) -> dict[str, bool]:
    context = gateway(request)
    body = await json_body(request, Hold, context.settings.tenant_gateway_body_limit_bytes)
    prefix = result_download_lease("")
    if not name.startswith(prefix):
        raise invalid("name", f"only {prefix}<run id>")
    await _owned_run(context, tenant, name.removeprefix(prefix))
    ttl = min(body.ttl_seconds, float(context.settings.tenant_gateway_presign_max_seconds))
    # Holders are namespaced by tenant: one tenant's WorkflowApi cannot pass for another's.
    return {"held": await context.leases.hold(name, f"{tenant.deployment_id}/{body.holder}", ttl) is not None}


@router.get("/assets/{asset_id}/versions/{version}", summary="One version of a WorkflowAsset")
async def asset_version(asset_id: str, version: int, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    stored = await gateway(request).catalogue.version(asset_id, version)
    if stored is None:
        raise not_found("asset", f"{asset_id}@{version}")
    return stored.model_dump(mode="json", by_alias=True)


@router.get("/logs/{run_id}", summary="A run's live log, framed: `<length>\\n<bytes>`; length 0 when idle")
async def follow(
    run_id: str,
    request: Request,
    offset: Annotated[int, Query(ge=0)] = 0,
    idle_seconds: Annotated[float, Query(ge=0.05, le=10)] = 0.3,
    tenant: Tenant = TENANT,
) -> StreamingResponse:
    context = gateway(request)
    await _owned_run(context, tenant, run_id)

    async def frames() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(context.logs.follow(run_id, offset=offset, idle_seconds=idle_seconds)) as chunks:
            async for chunk in chunks:
                data = chunk or b""
                yield b"%d\n" % len(data) + data

    return StreamingResponse(frames(), media_type="application/octet-stream")
