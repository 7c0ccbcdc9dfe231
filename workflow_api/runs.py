"""/v1/runs: start (validated, then `wf.run.requested`), stop (`wf.run.stop.requested`), status, list.

The API changes no run itself. A start is recorded in `run_requests` (for its Idempotency-Key and so that its
status reads `requested` until the jobs handler has queued it), then published with an event id derived from the
run id: a retried start publishes the same event, which JetStream and the jobs handler de-duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event, utcnow
from events.payloads.run import RunRequested, RunStopRequested
from schemas.inputs import InputDocument
from schemas.provisioning import DeploymentDocument, ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from workflow_api.assets import resolve
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.context import SOURCE, ApiContext
from workflow_api.models import RunAccepted, RunPage, RunStatus, RunSummary, StartRun, TimelineEntry
from workflow_api.pagination import Cursor, Limit, next_link, page
from workflow_api.principals import Principal
from workflow_api.problems import Problem, invalid_all, not_found, responses
from workflow_api.validation import check_inputs, check_parameters, run_spec

router = APIRouter(prefix="/v1/runs", tags=["runs"])
REQUESTS = "run_requests"
TERMINAL = {str(x) for x in RunDocument.machine.terminal}
REQUESTED = "requested"


def run_id_for(consumer_id: str, key: str | None) -> str:
    if key is None:
        return f"run-{uuid.uuid4()}"
    return f"run-{derived_id(consumer_id, 'run-start', key)}"


async def _site_of(context: ApiContext, transfer_process_id: str) -> str | None:
    """Where the transfer's WorkflowApi was placed, the site that fits its asset: its runs go there too."""
    found = await context.store.find(DeploymentDocument, limit=1, transfer_process_id=transfer_process_id)
    return found[0].site if found else None


def _fingerprint(request: RunRequested) -> str:
    body = {
        "asset_id": request.asset_id,
        "asset_version": request.asset_version,
        "parameters": request.parameters,
        "inputs": request.inputs,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def publish(context: ApiContext, event: Envelope[Any]) -> None:
    try:
        async with asyncio.timeout(context.settings.workflow_api_publish_timeout_seconds):
            await context.events.publish(event)
    except Exception:
        raise Problem(
            503,
            "bus-unavailable",
            "the command could not be stored durably; retry (with the same Idempotency-Key)",
            headers={"Retry-After": "2"},
        ) from None


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
    context = api(request)
    asset = await resolve(context, principal, body.asset_id, body.version)
    parameters, errors = check_parameters(asset, body.parameters)
    found: dict[str, InputDocument | None] = {}
    for input_id in body.inputs.values():
        doc = await context.store.get(InputDocument, input_id)
        found[input_id] = doc if doc is not None and doc.consumer_id == principal.consumer_id else None
    staged, input_errors = check_inputs(asset, body.inputs, found)
    errors += input_errors
    if errors:
        raise invalid_all(errors)
    run_id = run_id_for(principal.consumer_id, idempotency_key)
    try:
        command = RunRequested(
            run_id=run_id,
            consumer_id=principal.consumer_id,
            transfer_process_id=principal.grant_id,
            site=await _site_of(context, principal.grant_id),
            asset_id=asset.asset_id,
            asset_version=asset.version,
            parameters=parameters,
            inputs=[i.input_id for i in staged],
            spec=run_spec(asset, staged),
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise invalid_all(
            [{"field": f"asset.{field}", "message": f"the asset cannot run as defined: {first['msg']}"}]
        ) from None
    fingerprint = _fingerprint(command)
    record = {
        "_id": run_id,
        "consumer_id": principal.consumer_id,
        "asset_id": asset.asset_id,
        "asset_version": asset.version,
        "parameters": parameters,
        "inputs": dict(body.inputs),
        "fingerprint": fingerprint,
        "created_at": utcnow(),
    }
    status = 202
    try:
        await context.db[REQUESTS].insert_one(record)
    except DuplicateKeyError:
        existing = await context.db[REQUESTS].find_one({"_id": run_id})
        if existing is None or existing.get("fingerprint") != fingerprint:
            raise Problem(
                409,
                "idempotency-key-reused",
                "this Idempotency-Key was used for a different run start; use a new key",
                errors=[{"field": "Idempotency-Key", "message": "already used with other parameters or inputs"}],
            ) from None
    event = new_event(
        s.RUN_REQUESTED,
        command,
        id_=derived_id(run_id, s.RUN_REQUESTED),
        subject=run_id,
        correlationid=run_id,
        source=SOURCE,
    )
    # Published again on a retry: the crash may have come between the record and the publish.
    await publish(context, event)
    current = await context.store.get(RunDocument, run_id)
    accepted = RunAccepted(
        run_id=run_id,
        state=current.state if current is not None else REQUESTED,
        status_url=f"/v1/runs/{run_id}",
    )
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=status, headers={"Location": f"/v1/runs/{run_id}"}
    )


async def owned_run(context: ApiContext, principal: Principal, run_id: str) -> RunStatus:
    """The run's status if it is this consumer's; 404 for unknown ids and other consumers' runs alike."""
    run = await context.store.get(RunDocument, run_id)
    if run is not None and run.consumer_id == principal.consumer_id:
        return await _status(context, run)
    requested = await context.db[REQUESTS].find_one({"_id": run_id})
    if run is None and requested is not None and requested.get("consumer_id") == principal.consumer_id:
        at: datetime = requested["created_at"]
        return RunStatus(
            id=run_id,
            asset_id=requested["asset_id"],
            asset_version=requested["asset_version"],
            state=REQUESTED,
            created_at=at,
            updated_at=at,
            parameters=requested.get("parameters", {}),
            inputs=requested.get("inputs", {}),
            timeline=[TimelineEntry(state=REQUESTED, at=at)],
        )
    raise not_found("run", run_id)


async def _status(context: ApiContext, run: RunDocument) -> RunStatus:
    # The staged inputs travel in the run's spec: name -> input id, without another read.
    staged = run.spec.get("inputs") or []
    inputs = {str(i["name"]): str(i["input_id"]) for i in staged if isinstance(i, dict) and "input_id" in i}
    finished = run.state in TERMINAL
    results_url = None
    if finished:
        result = await context.store.get(ResultDocument, run.id)
        if result is not None and result.state == ResultState.PUBLISHED:
            results_url = f"/v1/runs/{run.id}/results"
    return RunStatus(
        id=run.id,
        asset_id=run.asset_id,
        asset_version=run.asset_version,
        state=run.state,
        created_at=run.created_at,
        updated_at=run.updated_at,
        attempt=run.attempt,
        exit_code=run.exit_code,
        reason=run.reason,
        parameters=run.parameters,
        inputs=inputs,
        timeline=[TimelineEntry(state=h.to, at=h.at, reason=h.reason) for h in run.history],
        finished=finished,
        results_url=results_url,
    )


@router.get("/{run_id}", summary="A run's state and timeline", response_model=RunStatus, responses=responses(401, 404))
async def get_run(run_id: str, request: Request, principal: Principal = AUTHENTICATED) -> RunStatus:
    return await owned_run(api(request), principal, run_id)


@router.post(
    "/{run_id}/stop",
    status_code=202,
    summary="Stop a run (202); a finished run answers 409 with its end",
    response_model=RunAccepted,
    responses=responses(401, 403, 404, 409, 503),
)
async def stop_run(run_id: str, request: Request, principal: Principal = AUTHENTICATED) -> RunAccepted:
    context = api(request)
    status = await owned_run(context, principal, run_id)
    principal.require_active("stop runs")
    if status.finished:
        raise Problem(
            409,
            "run-finished",
            f"run {run_id} already ended: {status.state}; nothing to stop",
            errors=[{"field": "run_id", "message": f"already {status.state}"}],
        )
    if status.state == REQUESTED:
        # The jobs handler has not recorded the run yet, and a stop for a run it does not know is dropped.
        raise Problem(
            409,
            "run-not-queued-yet",
            f"run {run_id} is not queued yet; retry in a moment",
            headers={"Retry-After": "1"},
        )
    stop = RunStopRequested(run_id=run_id, consumer_id=principal.consumer_id, reason="stopped by the consumer")
    await publish(
        context,
        new_event(
            s.RUN_STOP_REQUESTED,
            stop,
            id_=derived_id(run_id, s.RUN_STOP_REQUESTED),
            subject=run_id,
            correlationid=run_id,
            source=SOURCE,
        ),
    )
    return RunAccepted(run_id=run_id, state=status.state, status_url=f"/v1/runs/{run_id}", message="stop requested")


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
    context = api(request)
    query: dict[str, Any] = {"consumer_id": principal.consumer_id}
    if state is not None:
        query["state"] = state.value
    if asset is not None:
        query["asset_id"] = asset
    if since is not None:
        if since.tzinfo is None:
            raise invalid_all([{"field": "since", "message": "give a time zone (2026-12-01T12:00:00Z)"}])
        query["created_at"] = {"$gte": since}
    raws, next_cursor = await page(context.db[RunDocument.collection], query, cursor, limit)
    items = []
    for raw in raws:
        run = RunDocument.model_validate(raw)
        items.append(
            RunSummary(
                id=run.id,
                asset_id=run.asset_id,
                asset_version=run.asset_version,
                state=run.state,
                created_at=run.created_at,
                updated_at=run.updated_at,
            )
        )
    return RunPage(items=items, next=next_link(request, next_cursor))
