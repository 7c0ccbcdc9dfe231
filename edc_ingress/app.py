"""The HTTP routes EDC connectors call. Each answers once its events are acked by JetStream; handlers do the work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from edc_ingress import normalise
from edc_ingress.access import add_access_route, not_found
from edc_ingress.auth import Authenticator
from edc_ingress.body import parse_object, read_limited, require_json
from edc_ingress.dataflows import add_dataflow_routes
from edc_ingress.problems import Problem, invalid
from edc_ingress.wire import ControlPlaneProvisionRequest, DataPlaneProvisionRequest, EventCallback
from events.envelope import Envelope
from events.payloads.edc import RequestType
from http_serving.body_limit import BodyLimit
from http_serving.problems import install_problem_handlers
from http_serving.rate_limits import TokenBuckets, retry_after
from ports.edc import EdcClient, EdcError, EdcNotConfigured
from ports.events import EventSink
from ports.store import StateStore
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.provisioning import SETTLED, ProvisionDocument

log = structlog.get_logger("gxwf.edc_ingress")

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]
W = TypeVar("W", bound=BaseModel)

# EDC before 0.11 sends deprovisioning to the provision endpoint with the same body. Until we answered the
# provisioning, EDC holds nothing to deprovision, so an untyped request is a re-sent provision request. After
# that it may be either (a re-send can cross our callback): the transfer's state at the connector decides.
_ENDING = {"COMPLETING", "COMPLETED", "TERMINATING", "TERMINATED", "DEPROVISIONING", "DEPROVISIONING_REQUESTED"}
_ENDING |= {"DEPROVISIONED", "SUSPENDING", "SUSPENDED"}
# The same states as EDC's numeric codes (TransferProcessStates), which older management APIs return.
_ENDING_CODES = range(650, 1001)


_ENVELOPE_ROOM = 16 * 1024


@dataclass(frozen=True)
class IngressLimits:
    body_bytes: int = 256 * 1024
    publish_timeout: float = 5.0
    # The bus's message size limit (NATS max_payload); a larger event is refused with 413 before publishing.
    event_bytes: int = 1024 * 1024
    # Requests per second each connector may make (in bursts of `burst`); 0: no limit.
    rate_per_second: float = 0.0
    burst: int = 1


class Ingress:
    def __init__(
        self,
        registry: ConnectorRegistry,
        sink: EventSink,
        store: StateStore,
        readiness: ReadinessCheck,
        limits: IngressLimits,
        edc: EdcClient | None = None,
        *,
        dataplane_id: str = "gxwf",
    ) -> None:
        self.auth = Authenticator(registry)
        self.sink = sink
        self.store = store
        self.readiness = readiness
        self.limits = limits
        self.edc = edc
        # How this data plane names itself to Data Plane Signaling control planes (GXWF_EDC_DATAPLANE_ID).
        self.dataplane_id = dataplane_id
        # Per connector: one connector flooding the ingress does not slow another's requests.
        self.rates = TokenBuckets(limits.rate_per_second, limits.burst)

    async def accept(self, request: Request, model: type[W]) -> tuple[EdcConnector, W, dict[str, Any], int]:
        """Authenticated, JSON, within the size limit, and valid, in that order; a Problem otherwise.
        Returns the connector, the validated body, the body as parsed, and its size in bytes."""
        connector = await self.authenticate(request)
        require_json(request)
        raw = await read_limited(request, self.limits.body_bytes)
        data = parse_object(raw)
        try:
            return connector, model.model_validate(data), data, len(raw)
        except ValidationError as error:
            raise invalid(error) from None

    async def accept_optional(self, request: Request, model: type[W]) -> tuple[EdcConnector, W, dict[str, Any], int]:
        """Like accept, for messages whose body is optional: an empty body (of any content type) is `{}`."""
        connector = await self.authenticate(request)
        raw = await read_limited(request, self.limits.body_bytes)
        if raw.strip():
            require_json(request)
        data = parse_object(raw) if raw.strip() else {}
        try:
            return connector, model.model_validate(data), data, len(raw)
        except ValidationError as error:
            raise invalid(error) from None

    @property
    def publish_timeout(self) -> float:
        return self.limits.publish_timeout

    async def authenticate(self, request: Request) -> EdcConnector:
        """The calling connector (by API key or OAuth2 bearer token), or 401; rate-limited per connector. Every
        route authenticates here."""
        connector = await self.auth.authenticate(request.headers, request.query_params)
        if connector is None:
            raise self.auth.refusal()
        if (wait := self.rates.take(connector.name)) > 0:
            raise Problem(
                429,
                "too-many-requests",
                "Too many requests",
                f"connector {connector.name} is over its {self.limits.rate_per_second:g} requests per second; "
                "retry after the time given",
                headers={"Retry-After": retry_after(wait)},
            )
        return connector

    def check_size(self, events: Sequence[Envelope[Any]], body_size: int) -> None:
        """413 for events larger than the bus takes; `publish` checks too, this is for checking before storing."""
        # An event holds the body (re-encoded, never larger) once, plus a few KiB: measure only when close.
        if 2 * body_size + _ENVELOPE_ROOM > self.limits.event_bytes:
            size = max(len(e.model_dump_json(by_alias=True).encode()) for e in events)
            if size > self.limits.event_bytes:
                raise Problem(
                    413,
                    "payload-too-large",
                    "Payload too large",
                    f"body: as an event it would be {size} bytes, over the bus's {self.limits.event_bytes}",
                    errors=[{"field": "body", "message": "too large for the event bus"}],
                )

    async def publish(self, events: Sequence[Envelope[Any]], body_size: int) -> None:
        self.check_size(events, body_size)
        try:
            async with asyncio.timeout(self.limits.publish_timeout):
                await asyncio.gather(*(self.sink.publish(e) for e in events))
        except Exception as error:
            log.warning("publish failed", error=repr(error), events=[e.id for e in events])
            if "maximum bytes" in str(error) or "maximum messages" in str(error):
                # The stream refuses new events rather than drop acknowledged ones: the connector retries later.
                raise Problem(
                    503,
                    "bus-full",
                    "Event bus full",
                    "the event stream is at its size limit; retry later",
                    headers={"Retry-After": "30"},
                ) from None
            raise Problem(
                503,
                "bus-unavailable",
                "Event bus unavailable",
                "the request could not be stored durably; retry later",
                headers={"Retry-After": "2"},
            ) from None

    async def provision_of(self, connector: EdcConnector, transfer_process_id: str) -> ProvisionDocument | None:
        """The transfer's provisioning if there is one; 404 when it is another connector's, the answer a
        connector gets for a transfer nobody knows: it may neither change nor learn of other connectors' ones."""
        try:
            async with asyncio.timeout(self.limits.publish_timeout):
                doc = await self.store.get(ProvisionDocument, transfer_process_id)
        except Exception as error:
            log.warning("store unavailable", error=repr(error))
            raise _unavailable("store-unavailable", "State store unavailable") from None
        if doc is not None and doc.connector != connector.name:
            log.warning(
                "request for another connector's transfer", connector=connector.name, transfer=transfer_process_id
            )
            raise not_found(transfer_process_id)
        return doc

    async def classify_untyped(self, connector: EdcConnector, transfer_process_id: str) -> RequestType:
        doc = await self.provision_of(connector, transfer_process_id)
        if doc is None or doc.state not in SETTLED:
            return "provision"
        if self.edc is None:
            return "deprovision"
        try:
            transfer = await self.edc.transfer_process(connector.name, transfer_process_id)
        except EdcNotConfigured:
            # Nobody to ask: once provisioned, an untyped request is taken as the deprovisioning.
            return "deprovision"
        except EdcError as error:
            log.warning("transfer state unknown", transfer=transfer_process_id, error=str(error))
            raise _unavailable("connector-unavailable", "Connector management API unavailable") from None
        state = (transfer.state or "").upper()
        ending = state in _ENDING or (state.isdigit() and int(state) in _ENDING_CODES)
        return "deprovision" if ending else "provision"


def _unavailable(slug: str, title: str) -> Problem:
    # EDC retries a provisioner request that got a 5xx.
    return Problem(503, slug, title, "retry later", headers={"Retry-After": "2"})


def _accepted(events: Sequence[Envelope[Any]], warnings: Sequence[str] = ()) -> dict[str, Any]:
    body: dict[str, Any] = {"accepted": [{"id": e.id, "type": e.type} for e in events]}
    if warnings:
        body["warnings"] = list(warnings)
    return body


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def create_app(ingress: Ingress) -> FastAPI:
    app = FastAPI(
        title="gaiax-workflows EDC ingress",
        description="Provisioner requests and event callbacks from Eclipse Dataspace Connectors. See docs/edc.md.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )

    install_problem_handlers(app, service="ingress")
    # Before the key is checked: an unauthenticated body is bounded like any other.
    app.add_middleware(BodyLimit, limit=ingress.limits.body_bytes, setting="GXWF_EDC_BODY_LIMIT_BYTES")

    @app.post(
        "/edc/provisioner",
        summary="Control-plane HTTP provisioner (EDC up to 0.15)",
        openapi_extra=_body_schema(ControlPlaneProvisionRequest),
    )
    async def control_plane_provisioner(request: Request) -> dict[str, Any]:
        connector, body, _, size = await ingress.accept(request, ControlPlaneProvisionRequest)
        if body.type is not None:
            await ingress.provision_of(connector, body.transfer_process_id)  # classify_untyped checks it too
        kind = body.type or await ingress.classify_untyped(connector, body.transfer_process_id)
        event = normalise.control_plane(connector.name, body, kind)
        await ingress.publish([event], size)
        log.debug("provisioner request", connector=connector.name, kind=kind, transfer=body.transfer_process_id)
        return _accepted([event])

    @app.post(
        "/edc/dataplane/provision",
        summary="Data-plane ProvisionHttp provisioner (EDC 0.14 to 0.18)",
        openapi_extra=_body_schema(DataPlaneProvisionRequest),
    )
    async def data_plane_provisioner(request: Request) -> dict[str, Any]:
        connector, body, _, size = await ingress.accept(request, DataPlaneProvisionRequest)
        await ingress.provision_of(connector, body.flow_id)
        event = normalise.data_plane(connector.name, body)
        await ingress.publish([event], size)
        log.debug("data-plane request", connector=connector.name, kind=body.type, flow=body.flow_id)
        return _accepted([event])

    @app.post(
        "/edc/events",
        summary="Event callbacks: contract.negotiation.* and transfer.process.* (EDC 0.1 to today)",
        openapi_extra=_body_schema(EventCallback),
    )
    async def events(request: Request) -> dict[str, Any]:
        connector, body, raw, size = await ingress.accept(request, EventCallback)
        transfer = normalise.transfer_of(body)
        if transfer is not None:
            await ingress.provision_of(connector, transfer)
        result = normalise.callback(connector.name, body, raw)
        await ingress.publish(result.events, size)
        for warning in result.warnings:
            log.warning("callback kept raw only", connector=connector.name, warning=warning)
        return _accepted(result.events, result.warnings)

    add_access_route(app, ingress.auth, ingress.store)
    add_dataflow_routes(app, ingress)

    @app.get("/healthz", summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="NATS and MongoDB answer")
    async def readyz() -> JSONResponse:
        checks = await ingress.readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app
