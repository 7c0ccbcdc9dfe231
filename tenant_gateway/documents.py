"""/v1/documents, /v1/inputs, /v1/grants, /v1/queries, /v1/run-requests: the store, as much of it as one tenant's
WorkflowApi uses. Another tenant's document answers 404, as an unknown one does; finds and queries are the
tenant's; the only writes are the tenant's inputs and run starts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError

from ports.queries import Page, PageKey, RunFilter
from schemas.documents import StatefulDocument
from schemas.inputs import InputDocument, InputState
from schemas.names import input_prefix
from schemas.provisioning import AccessGrantDocument
from schemas.run import RunRequestRecord
from schemas.tenant_gateway import DOCUMENT_KINDS
from tenant_gateway.auth import TENANT, gateway
from tenant_gateway.body import invalid_body, json_body
from tenant_gateway.tenancy import Tenant, forbidden, invalid, not_found

router = APIRouter(prefix="/v1", tags=["store"])

# What a WorkflowApi filters its finds by, besides the state; the consumer is always the tenant.
_FIND_FIELDS = ("transfer_process_id",)
_INPUT_FIELDS = {"files", "size", "sha256"}


def _kind(name: str) -> type[StatefulDocument]:
    kind = DOCUMENT_KINDS.get(name)
    if kind is None:
        raise not_found("kind", name)
    return kind


def _dump(doc: BaseModel) -> dict[str, Any]:
    return doc.model_dump(mode="json", by_alias=True)


def _page(page: Page[Any]) -> dict[str, Any]:
    after = page.next
    return {
        "items": [_dump(item) for item in page.items],
        "next": {"created_at": after.created_at.isoformat(), "id": after.id} if after else None,
    }


def _after(created_at: datetime | None, after_id: str | None) -> PageKey | None:
    return PageKey(created_at, after_id) if created_at is not None and after_id is not None else None


async def owned(request: Request, tenant: Tenant, kind: type[StatefulDocument], doc_id: str) -> Any:
    doc = await gateway(request).store.get(kind, doc_id)
    if doc is None or getattr(doc, "consumer_id", None) != tenant.consumer_id:
        raise not_found(kind.collection, doc_id)
    return doc


@router.get("/documents/{kind}/{doc_id:path}", summary="One document of the tenant")
async def get_document(kind: str, doc_id: str, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    return _dump(await owned(request, tenant, _kind(kind), doc_id))


@router.get("/documents/{kind}", summary="The tenant's documents of a kind")
async def find_documents(
    kind: str,
    request: Request,
    states: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
    oldest_first: bool = False,
    transfer_process_id: str | None = None,
    tenant: Tenant = TENANT,
) -> list[dict[str, Any]]:
    equals: dict[str, Any] = {"consumer_id": tenant.consumer_id}
    if transfer_process_id is not None:
        equals["transfer_process_id"] = transfer_process_id
    found = await gateway(request).store.find(
        _kind(kind), states=states, limit=limit, oldest_first=oldest_first, **equals
    )
    return [_dump(doc) for doc in found if getattr(doc, "consumer_id", None) == tenant.consumer_id]


class CreateInput(BaseModel):
    document: dict[str, Any]
    event_id: str = Field(min_length=1, max_length=200)


@router.post("/inputs", summary="Record an upload of the tenant")
async def create_input(request: Request, tenant: Tenant = TENANT) -> dict[str, bool]:
    context = gateway(request)
    body = await json_body(request, CreateInput, context.settings.tenant_gateway_body_limit_bytes)
    try:
        doc = InputDocument.model_validate(body.document)
    except ValidationError as error:
        raise invalid_body([{**e, "loc": ("document", *e["loc"])} for e in error.errors()]) from None
    if doc.consumer_id != tenant.consumer_id:
        raise forbidden("document.consumer_id", "an input of another consumer")
    if doc.prefix != input_prefix(tenant.consumer_id, doc.id):
        raise invalid("document.prefix", "must be the input's own prefix")
    if doc.state != InputState.UPLOADING or doc.files:
        raise invalid("document.state", "a new input is uploading and has no files yet")
    if doc.expected is not None and not str(doc.expected.get("key", "")).startswith(doc.prefix):
        raise invalid("document.expected.key", "must lie under the input's prefix")
    return {"created": await context.store.create(doc, event_id=body.event_id)}


class InputTransition(BaseModel):
    to: str
    event_id: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=2000)
    fields: dict[str, Any] | None = None


@router.post("/inputs/{input_id}/transition", summary="An upload of the tenant is complete")
async def transition_input(input_id: str, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    context = gateway(request)
    body = await json_body(request, InputTransition, context.settings.tenant_gateway_body_limit_bytes)
    doc: InputDocument = await owned(request, tenant, InputDocument, input_id)
    if body.to != InputState.READY:
        raise invalid("to", "an upload only becomes ready here")
    fields = body.fields or {}
    if set(fields) - _INPUT_FIELDS:
        raise invalid("fields", f"only {sorted(_INPUT_FIELDS)}")
    files = fields.get("files", [])
    if not isinstance(files, list) or not all(
        isinstance(f, dict) and str(f.get("key", "")).startswith(doc.prefix) for f in files
    ):
        raise invalid("fields.files", "each file's key must lie under the input's prefix")
    result = await context.store.transition(
        InputDocument, input_id, body.to, event_id=body.event_id, reason=body.reason, fields=fields
    )
    return {"outcome": result.outcome.value, "state": result.state}


@router.delete("/inputs/{input_id}", status_code=204, summary="Remove an input document of the tenant")
async def delete_input(input_id: str, request: Request, tenant: Tenant = TENANT) -> Response:
    await owned(request, tenant, InputDocument, input_id)
    await gateway(request).records.delete_input(input_id)
    return Response(status_code=204)


@router.get("/grants/{token_sha256}", summary="The tenant's access grant of this token hash")
async def grant_by_token(token_sha256: str, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    grant = await gateway(request).queries.grant_by_token(token_sha256)
    if grant is None or grant.consumer_id != tenant.consumer_id:
        raise not_found(AccessGrantDocument.collection, "for this token")
    return _dump(grant)


@router.get("/queries/runs", summary="A page of the tenant's runs, newest first")
async def runs(
    request: Request,
    state: str | None = None,
    asset_id: str | None = None,
    since: datetime | None = None,
    after_created_at: datetime | None = None,
    after_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    tenant: Tenant = TENANT,
) -> dict[str, Any]:
    filters = RunFilter(state=state, asset_id=asset_id, since=since)
    page = await gateway(request).queries.runs(
        tenant.consumer_id, filters, after=_after(after_created_at, after_id), limit=limit
    )
    return _page(page)


@router.get("/queries/inputs", summary="A page of the tenant's inputs, newest first")
async def inputs(
    request: Request,
    after_created_at: datetime | None = None,
    after_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    tenant: Tenant = TENANT,
) -> dict[str, Any]:
    page = await gateway(request).queries.inputs(
        tenant.consumer_id, after=_after(after_created_at, after_id), limit=limit
    )
    return _page(page)


@router.post("/run-requests", summary="Record a run start of the tenant (its Idempotency-Key)")
async def record_run_request(request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    context = gateway(request)
    record = await json_body(request, RunRequestRecord, context.settings.tenant_gateway_body_limit_bytes)
    if record.consumer_id != tenant.consumer_id:
        raise forbidden("consumer_id", "a run start of another consumer")
    stored = await context.records.record_run_request(record)
    if stored.consumer_id != tenant.consumer_id:
        raise forbidden("id", "this run id is taken")
    return _dump(stored)


@router.get("/run-requests/{run_id}", summary="A run start of the tenant")
async def run_request(run_id: str, request: Request, tenant: Tenant = TENANT) -> dict[str, Any]:
    stored = await gateway(request).records.run_request(run_id)
    if stored is None or stored.consumer_id != tenant.consumer_id:
        raise not_found("run request", run_id)
    return _dump(stored)
