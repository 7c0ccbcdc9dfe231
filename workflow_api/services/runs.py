"""Run starts, stops and status.

The API changes no run itself. A start is recorded (for its Idempotency-Key, and so that its status reads
`requested` until the jobs handler has queued it), then published with an event id derived from the run id: a
retried start publishes the same event, which JetStream and the jobs handler de-duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event, utcnow
from events.payloads.run import RunRequested, RunStopRequested
from ports.queries import Page, PageKey, RunFilter
from schemas.inputs import InputDocument
from schemas.provisioning import DeploymentDocument, ResultDocument, ResultState
from schemas.run import RunDocument, RunRequestRecord
from workflow_api.assets import resolve
from workflow_api.context import SOURCE, ApiContext
from workflow_api.models import RunAccepted, RunStatus, TimelineEntry
from workflow_api.principals import Principal
from workflow_api.problems import Problem, invalid_all, not_found
from workflow_api.validation import check_inputs, check_parameters, run_spec

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


async def start(
    context: ApiContext,
    principal: Principal,
    *,
    asset_id: str,
    version: int | None,
    parameters: Mapping[str, Any],
    inputs: Mapping[str, str],
    idempotency_key: str | None,
) -> RunAccepted:
    """Check the start against the asset, record it and publish `wf.run.requested`."""
    asset = await resolve(context, principal, asset_id, version)
    checked, errors = check_parameters(asset, dict(parameters))
    found: dict[str, InputDocument | None] = {}
    for input_id in inputs.values():
        doc = await context.store.get(InputDocument, input_id)
        found[input_id] = doc if doc is not None and doc.consumer_id == principal.consumer_id else None
    staged, input_errors = check_inputs(asset, dict(inputs), found)
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
            parameters=checked,
            inputs=[i.input_id for i in staged],
            spec=run_spec(asset, staged),
        )
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise invalid_all(
            [{"field": f"asset.{field}", "message": f"the asset cannot run as defined: {first['msg']}"}]
        ) from None
    record = RunRequestRecord(
        id=run_id,
        consumer_id=principal.consumer_id,
        asset_id=asset.asset_id,
        asset_version=asset.version,
        parameters=checked,
        inputs=dict(inputs),
        fingerprint=_fingerprint(command),
        created_at=utcnow(),
    )
    stored = await context.records.record_run_request(record)
    if stored.fingerprint != record.fingerprint:
        raise Problem(
            409,
            "idempotency-key-reused",
            "this Idempotency-Key was used for a different run start; use a new key",
            errors=[{"field": "Idempotency-Key", "message": "already used with other parameters or inputs"}],
        )
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
    return RunAccepted(
        run_id=run_id,
        state=current.state if current is not None else REQUESTED,
        status_url=f"/v1/runs/{run_id}",
    )


async def owned_run(context: ApiContext, principal: Principal, run_id: str) -> RunStatus:
    """The run's status if it is this consumer's; 404 for unknown ids and other consumers' runs alike."""
    run = await context.store.get(RunDocument, run_id)
    if run is not None and run.consumer_id == principal.consumer_id:
        return await _status(context, run)
    requested = await context.records.run_request(run_id)
    if run is None and requested is not None and requested.consumer_id == principal.consumer_id:
        at = requested.created_at
        return RunStatus(
            id=run_id,
            asset_id=requested.asset_id,
            asset_version=requested.asset_version,
            state=REQUESTED,
            created_at=at,
            updated_at=at,
            parameters=requested.parameters,
            inputs=requested.inputs,
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


async def stop(context: ApiContext, principal: Principal, run_id: str) -> RunAccepted:
    """Publish `wf.run.stop.requested` for a run of this consumer that has not ended."""
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
    command = RunStopRequested(run_id=run_id, consumer_id=principal.consumer_id, reason="stopped by the consumer")
    await publish(
        context,
        new_event(
            s.RUN_STOP_REQUESTED,
            command,
            id_=derived_id(run_id, s.RUN_STOP_REQUESTED),
            subject=run_id,
            correlationid=run_id,
            source=SOURCE,
        ),
    )
    return RunAccepted(run_id=run_id, state=status.state, status_url=f"/v1/runs/{run_id}", message="stop requested")


async def runs_of(
    context: ApiContext, principal: Principal, filters: RunFilter, after: PageKey | None, limit: int
) -> Page[RunDocument]:
    return await context.queries.runs(principal.consumer_id, filters, after=after, limit=limit)
