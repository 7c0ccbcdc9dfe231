"""The Data Plane Signaling (DPS) v1 data plane endpoint, `{ingress}/dataflows`, for EDC 0.18 and later.

A connector's control plane starts, suspends, resumes and ends the data flow of one transfer (`processId`).
`start` publishes the provisioning request and answers 202 STARTING: the provisioning handler calls the control
plane back (`.../dataflow/started` with the consumer's WorkflowApi and token, or `errored`). `suspend` and `resume`
answer at once: the token is replaced (by one nobody holds, or by a fresh one returned here). `terminate` and
`completed` end the flow and tear everything down through the provisioning's teardown. Every message is kept
as an `edc.dataflow.signalled` event. See docs/edc.md, "EDC 0.18 and later".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from adapters.callback_policy import CallbackRefused, check_callback, check_callback_address
from edc_ingress import dps
from edc_ingress.problems import Problem
from events.envelope import Envelope
from events.payloads.edc import DataFlowMessageType
from ports.store import Outcome, StateStore
from schemas.connectors import EdcConnector
from schemas.dataflows import DATAFLOW_MACHINE, DataFlowDocument, DataFlowState
from schemas.provisioning import AccessGrantDocument, AccessState, ProvisionDocument

log = structlog.get_logger("gxwf.edc_ingress.dataflows")

T = TypeVar("T")
W = TypeVar("W", bound=BaseModel)


class Ingress(Protocol):
    """What the routes use of edc_ingress.app.Ingress (declared here: that module adds these routes)."""

    store: StateStore
    dataplane_id: str

    @property
    def publish_timeout(self) -> float: ...

    async def authenticate(self, request: Request) -> EdcConnector: ...

    async def accept(self, request: Request, model: type[W]) -> tuple[EdcConnector, W, dict[str, Any], int]: ...

    async def accept_optional(
        self, request: Request, model: type[W]
    ) -> tuple[EdcConnector, W, dict[str, Any], int]: ...

    def check_size(self, events: Sequence[Envelope[Any]], body_size: int) -> None: ...

    async def publish(self, events: Sequence[Envelope[Any]], body_size: int) -> None: ...


F = DataFlowState
_TARGETS: dict[str, DataFlowState] = {
    "suspend": F.SUSPENDED,
    "resume": F.STARTED,
    "terminate": F.TERMINATED,
    "completed": F.COMPLETED,
}
_TRANSITION_ROUTES: tuple[tuple[str, DataFlowMessageType, str], ...] = (
    ("suspend", "suspend", "DPS DataFlowSuspendMessage: the token stops working"),
    ("resume", "resume", "DPS resume: a fresh token, in the answer's dataAddress"),
    ("terminate", "terminate", "DPS DataFlowTerminateMessage: everything torn down"),
    ("completed", "completed", "DPS completed (EDC): everything torn down"),
    ("complete", "completed", "DPS complete (the spec's name of completed)"),
    # Sent to a consumer's data plane once the provider's started; this data plane is the provider's: refused.
    ("started", "started", "DPS started: a consumer-side message, refused here"),
)
_SIGNALING_SETTING = "GXWF_EDC_SIGNALING_URL (or signaling_url in the connectors file)"


def _response(tp: str, state: str, dataplane_id: str, address: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@type": "DataFlowResponseMessage",
        "dataplaneId": dataplane_id,
        "dataFlowId": tp,
        "state": state,
    }
    if address is not None:
        body["dataAddress"] = address
    return body


def _digest(message: dict[str, Any]) -> str:
    """What the message asks, whatever the order of its fields: tells a re-sent message from another one. Without
    its messageId: EDC builds the message anew, with a new id, for each attempt at the same transfer."""
    asked = {k: v for k, v in message.items() if k != "messageId"}
    return hashlib.sha256(json.dumps(asked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _bad(field: str, message: str, slug: str = "invalid-request", title: str = "Invalid request") -> Problem:
    return Problem(400, slug, title, f"{field}: {message}", errors=[{"field": field, "message": message}])


def _unknown(tp: str) -> Problem:
    """For a flow nobody knows and another connector's alike."""
    return Problem(
        404,
        "not-found",
        "Not found",
        f"processId: no data flow {tp}",
        errors=[{"field": "processId", "message": "unknown"}],
    )


def _forbidden_transition(tp: str, state: str, kind: str) -> Problem:
    return Problem(
        409,
        "invalid-state",
        "Transition not allowed",
        f"data flow {tp} is {state}: {kind} is not allowed in that state",
        errors=[{"field": "state", "message": state}],
    )


def signaling_base(connector: EdcConnector, callback_address: str | None) -> str:
    """Where this flow's callbacks go: the message's callbackAddress when it lies under the connector's
    signaling URL (else its callback bases), or the signaling URL itself. Neither configured: refused, since
    the flow could never be told it started."""
    bases = (connector.signaling_url,) if connector.signaling_url else connector.callback_urls
    if callback_address:
        if not bases:
            raise _bad(
                "callbackAddress",
                f"no signaling URL is configured for connector {connector.name}: set {_SIGNALING_SETTING}",
            )
        try:
            check_callback_address(callback_address)
            check_callback(callback_address, bases)
        except CallbackRefused as refused:
            raise _bad("callbackAddress", str(refused)) from None
        return callback_address.rstrip("/")
    if connector.signaling_url is None:
        raise _bad(
            "callbackAddress",
            f"the message has none and no signaling URL is configured for connector {connector.name}: set "
            f"{_SIGNALING_SETTING}",
        )
    return connector.signaling_url


def add_dataflow_routes(app: FastAPI, ingress: Ingress) -> None:
    async def bounded(call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(ingress.publish_timeout):
                return await call
        except Problem:
            raise
        except Exception as error:
            log.warning("store unavailable", error=repr(error))
            raise Problem(
                503, "store-unavailable", "State store unavailable", "retry later", headers={"Retry-After": "2"}
            ) from None

    async def flow_of(connector: EdcConnector, tp: str) -> DataFlowDocument:
        """The connector's own data flow; another connector's is answered like an unknown one."""
        flow = await bounded(ingress.store.get(DataFlowDocument, tp))
        if flow is None or flow.connector != connector.name:
            if flow is not None:
                log.warning("data flow of another connector", connector=connector.name, flow=tp)
            raise _unknown(tp)
        return flow

    async def not_provisioned(connector: EdcConnector, tp: str) -> None:
        """A transfer provisioned through the provisioning interfaces has no data flow to start: 409 (404 when
        it is another connector's)."""
        provision = await bounded(ingress.store.get(ProvisionDocument, tp))
        if provision is not None and provision.connector != connector.name:
            raise _unknown(tp)
        if provision is not None:
            raise Problem(
                409,
                "dataflow-exists",
                "Transfer provisioned already",
                f"processId: transfer {tp} is provisioned through another interface",
                errors=[{"field": "processId", "message": "provisioned already"}],
            )

    async def claimed(connector: EdcConnector, flow: DataFlowDocument, event_id: str) -> None:
        """Stores the flow before its events are published: the insert is the check that no flow exists (one
        store operation, not a lookup and an insert). A flow that exists already answers 409, unless this is
        the same message again (the same fields but for its messageId; the flow still where it left it): its
        events are published again (the provisioning request under the same id, which JetStream keeps once), so
        a start whose publishing failed can be sent again."""
        if await bounded(ingress.store.create(flow, event_id=event_id)):
            return
        existing = await bounded(ingress.store.get(DataFlowDocument, flow.id))
        if existing is None or existing.connector != connector.name:
            raise _unknown(flow.id)
        if existing.state == flow.state and existing.message_sha256 == flow.message_sha256:
            return
        raise Problem(
            409,
            "dataflow-exists",
            "Data flow exists",
            f"processId: data flow {flow.id} exists already, in state {existing.state}",
            errors=[{"field": "processId", "message": f"exists, state {existing.state}"}],
        )

    @app.post("/dataflows/start", summary="DPS DataFlowStartMessage (provider side)", status_code=202)
    async def start(request: Request) -> JSONResponse:
        connector, message, data, size = await ingress.accept(request, dps.StartMessage)
        tp = message.process_id
        if message.flow_type() == "PUSH":
            raise _bad("transferType", "this data plane serves pull transfers only (HttpData-PULL)")
        if message.data_address is not None:
            raise _bad("dataAddress", "a pull transfer's start carries no data address: the data plane makes it")
        signaling = signaling_base(connector, message.callback_address)
        await not_provisioned(connector, tp)
        provision = dps.provision_requested(connector.name, message, signaling)
        record = dps.signalled(
            connector.name,
            "start",
            tp,
            F.STARTING,
            message_id=message.message_id,
            profile=message.profile_name(),
            extra=message.unmapped(),
        )
        events = [provision, record]
        ingress.check_size(events, size)
        # Stored, then published; 202 only once both happened (the provisioning handler finds the flow stored).
        flow = DataFlowDocument(
            id=tp,
            state=F.STARTING,
            connector=connector.name,
            signaling_url=signaling,
            dataset_id=message.dataset_id,
            agreement_id=message.agreement_id,
            counter_party_id=message.counter_party_id,
            message_sha256=_digest(data),
        )
        await claimed(connector, flow, provision.id)
        await ingress.publish(events, size)
        log.info("data flow starting", connector=connector.name, flow=tp, dataset=message.dataset_id)
        return JSONResponse(
            _response(tp, F.STARTING, ingress.dataplane_id),
            status_code=202,
            headers={"Location": f"{request.base_url}dataflows/{quote(tp, safe='')}"},
        )

    @app.post("/dataflows/prepare", summary="DPS DataFlowPrepareMessage (consumer side)")
    async def prepare(request: Request) -> dict[str, Any]:
        # A consumer pulling from our WorkflowApi needs nothing from its own data plane: prepared at once.
        connector, message, data, size = await ingress.accept(request, dps.PrepareMessage)
        tp = message.process_id
        await not_provisioned(connector, tp)
        record = dps.signalled(
            connector.name, "prepare", tp, F.PREPARED, message_id=message.message_id, extra=message.unmapped()
        )
        ingress.check_size([record], size)
        flow = DataFlowDocument(id=tp, state=F.PREPARED, connector=connector.name, message_sha256=_digest(data))
        await claimed(connector, flow, record.id)
        await ingress.publish([record], size)
        return _response(tp, F.PREPARED, ingress.dataplane_id)

    async def transition(request: Request, tp: str, kind: DataFlowMessageType) -> dict[str, Any]:
        connector, message, _, size = await ingress.accept_optional(request, dps.TransitionMessage)
        flow = await flow_of(connector, tp)
        target = _TARGETS.get(kind)
        if target is None or not DATAFLOW_MACHINE.allows(flow.state, target):
            raise _forbidden_transition(tp, flow.state, kind)
        if kind == "resume" or kind == "suspend":
            grant = await bounded(ingress.store.get(AccessGrantDocument, tp))
            if grant is None or grant.state != AccessState.ACTIVE:
                raise _forbidden_transition(tp, flow.state, kind)
        # One transition per message: a re-sent message (same messageId) changes nothing again; without a
        # messageId, the flow's position in its history tells a second suspend from a re-sent first one.
        key = dps.signalled(
            connector.name, kind, tp, target, message_id=message.message_id, key=f"#{len(flow.history)}"
        ).id
        reason = message.reason
        moved = await bounded(
            ingress.store.transition(
                DataFlowDocument, tp, target, event_id=key, reason=reason, fields={"reason": reason} if reason else None
            )
        )
        if not moved.settled:
            raise _forbidden_transition(tp, str(moved.state), kind)
        if moved.outcome is Outcome.ALREADY_APPLIED:
            # Applied when it was first sent; its token is not handed out (or taken away) twice.
            return _response(tp, str(moved.state), ingress.dataplane_id)
        address: dict[str, Any] | None = None
        # A token nobody holds replaces the consumer's (suspend), or a fresh one that goes back in the answer.
        token = secrets.token_urlsafe(32)
        if kind in ("suspend", "resume"):
            await bounded(
                ingress.store.set_fields(
                    AccessGrantDocument, tp, {"token_sha256": hashlib.sha256(token.encode()).hexdigest()}
                )
            )
        if kind == "resume":
            assert grant is not None
            address = dps.pull_address(grant.workflow_api_url, token)
        events = [
            dps.signalled(
                connector.name,
                kind,
                tp,
                target,
                message_id=message.message_id,
                reason=reason,
                extra=message.unmapped(),
                key=key,
            )
        ]
        if kind in ("terminate", "completed") and flow.state != F.PREPARED:  # a prepared flow provisioned nothing
            events.insert(0, dps.deprovision_requested(connector.name, tp, kind, reason))
        await ingress.publish(events, size)
        log.info("data flow signalled", connector=connector.name, flow=tp, message=kind, state=target)
        return _response(tp, target, ingress.dataplane_id, address)

    def transition_route(kind: DataFlowMessageType) -> Callable[[str, Request], Awaitable[dict[str, Any]]]:
        async def route(process_id: str, request: Request) -> dict[str, Any]:
            return await transition(request, process_id, kind)

        return route

    for path, kind, summary in _TRANSITION_ROUTES:
        route = transition_route(kind)
        app.add_api_route(f"/dataflows/{{process_id}}/{path}", route, methods=["POST"], summary=summary)

    def status_of(flow: DataFlowDocument) -> dict[str, Any]:
        # The spec's examples answer `dataplaneId` and `state`, the conformance kit reads `dataFlowId`: all of them.
        return {"dataflowId": flow.id, "dataFlowId": flow.id, "dataplaneId": ingress.dataplane_id, "state": flow.state}

    @app.get("/dataflows/{process_id}", name="dataflow_state", summary="DPS: the data flow's state")
    async def state(process_id: str, request: Request) -> dict[str, Any]:
        return status_of(await flow_of(await ingress.authenticate(request), process_id))

    @app.get("/dataflows/{process_id}/status", summary="DPS: the data flow's state (the spec's path)")
    async def status(process_id: str, request: Request) -> dict[str, Any]:
        return status_of(await flow_of(await ingress.authenticate(request), process_id))
