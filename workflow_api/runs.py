"""/v1/runs: start (validated, then `wf.run.requested`), stop (`wf.run.stop.requested`), status, list.

What a start, a stop and a status do is in workflow_api.services.runs; these routes parse and render.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from ports.queries import RunFilter
from schemas.run import RunState
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.models import RunAccepted, RunPage, RunStatus, RunSummary, StartRun
from workflow_api.pagination import Cursor, Limit, after, next_link
from workflow_api.principals import Principal
from workflow_api.problems import invalid_all, responses
from workflow_api.services import runs

router = APIRouter(prefix="/v1/runs", tags=["runs"])


@router.post(
    "",
    status_code=202,
    summary="Start a run of an asset (validated against the asset's inputs and parameters first)",
    response_model=RunAccepted,
    responses=responses(401, 403, 404, 409, 422, 503),
)
async def start_run(
    body: StartRun,
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="A retried start with the same key returns the same run",
        ),
    ] = None,
    principal: Principal = AUTHENTICATED,
) -> JSONResponse:
    principal.require_active("start runs")
    accepted = await runs.start(
        api(request),
        principal,
        asset_id=body.asset_id,
        version=body.version,
        parameters=body.parameters,
        inputs=body.inputs,
        idempotency_key=idempotency_key,
    )
    return JSONResponse(accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url})


@router.get("/{run_id}", summary="A run's state and timeline", response_model=RunStatus, responses=responses(401, 404))
async def get_run(run_id: str, request: Request, principal: Principal = AUTHENTICATED) -> RunStatus:
    return await runs.owned_run(api(request), principal, run_id)


@router.post(
    "/{run_id}/stop",
    status_code=202,
    summary="Stop a run (202); a finished run answers 409 with its end",
    response_model=RunAccepted,
    responses=responses(401, 403, 404, 409, 503),
)
async def stop_run(run_id: str, request: Request, principal: Principal = AUTHENTICATED) -> RunAccepted:
    return await runs.stop(api(request), principal, run_id)


@router.get("", summary="Your runs, newest first", response_model=RunPage, responses=responses(401, 422))
async def list_runs(
    request: Request,
    state: Annotated[RunState | None, Query(description="Only runs in this state")] = None,
    asset: Annotated[str | None, Query(max_length=63, description="Only runs of this asset")] = None,
    since: Annotated[datetime | None, Query(description="Only runs created at or after (ISO 8601)")] = None,
    limit: int = Limit,
    cursor: str | None = Cursor,
    principal: Principal = AUTHENTICATED,
) -> RunPage:
    if since is not None and since.tzinfo is None:
        raise invalid_all([{"field": "since", "message": "give a time zone (2026-12-01T12:00:00Z)"}])
    filters = RunFilter(state=state.value if state is not None else None, asset_id=asset, since=since)
    found = await runs.runs_of(api(request), principal, filters, after(cursor), limit)
    items = [
        RunSummary(
            id=run.id,
            asset_id=run.asset_id,
            asset_version=run.asset_version,
            state=run.state,
            created_at=run.created_at,
            updated_at=run.updated_at,
        )
        for run in found.items
    ]
    return RunPage(items=items, next=next_link(request, found.next))
