"""EDC requests of every generation -> our `edc.*` events, with ids derived from what makes them unique.

A connector re-sends the same request while it waits; the same request always yields the same event id,
which is the Nats-Msg-Id, so JetStream stores it once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from edc_ingress.problems import field_name
from edc_ingress.wire import (
    ControlPlaneProvisionRequest,
    DataPlaneProvisionRequest,
    EventCallback,
    NegotiationPayload,
    TransferPayload,
)
from events import subjects as s
from events.envelope import SOURCE, Envelope, derived_id, new_event
from events.payloads.edc import (
    ContractAgreement,
    EdcCallbackReceived,
    EdcDeprovisionRequested,
    EdcNegotiationFinalized,
    EdcNegotiationTerminated,
    EdcProvisionRequested,
    EdcTransferCompleted,
    EdcTransferEvent,
    EdcTransferStarted,
    EdcTransferTerminated,
    RequestType,
)

INGRESS_SOURCE = f"{SOURCE}:edc-ingress"

TRANSFER_EVENTS: dict[str, type[EdcTransferEvent]] = {
    "TransferProcessStarted": EdcTransferStarted,
    "TransferProcessCompleted": EdcTransferCompleted,
    "TransferProcessTerminated": EdcTransferTerminated,
}
NEGOTIATION_EVENTS = {
    "ContractNegotiationFinalized": s.EDC_NEGOTIATION_FINALIZED,
    "ContractNegotiationTerminated": s.EDC_NEGOTIATION_TERMINATED,
}


@dataclass
class Normalised:
    events: list[Envelope[Any]]
    # Why a callback of a known type produced no typed event (it is still kept raw).
    warnings: list[str] = field(default_factory=list)


def control_plane(connector: str, request: ControlPlaneProvisionRequest, kind: RequestType) -> Envelope[Any]:
    """`kind` is the request's own `type`, or what the caller classified an untyped (pre-0.11) request as."""
    tp = request.transfer_process_id
    resource = request.resource_definition_id or ""
    common = {
        "connector": connector,
        "generation": "control-plane-http",
        "transfer_process_id": tp,
        "asset_id": request.asset_id,
        "callback_address": request.callback_address,
        "resource_definition_id": request.resource_definition_id,
        "declared_type": request.type,
        "unmapped": request.unmapped(),
    }
    if kind == "provision":
        return _event(
            s.EDC_PROVISION_REQUESTED,
            EdcProvisionRequested.model_validate({**common, "policy": request.policy}),
            tp,
            ("control-plane-http", connector, tp, resource),
        )
    return _event(
        s.EDC_DEPROVISION_REQUESTED,
        EdcDeprovisionRequested.model_validate(
            {**common, "unmapped": {**request.unmapped(), **({"policy": request.policy} if request.policy else {})}}
        ),
        tp,
        ("control-plane-http", connector, tp, resource),
    )


def data_plane(connector: str, request: DataPlaneProvisionRequest) -> Envelope[Any]:
    tp = request.flow_id
    common = {
        "connector": connector,
        "generation": "data-plane-provision-http",
        "transfer_process_id": tp,
        "callback_address": request.callback_address,
        "provision_resource_id": request.provision_resource_id,
        "flow_id": request.flow_id,
        "declared_type": request.type,
        "unmapped": request.unmapped(),
    }
    key = ("data-plane-provision-http", connector, tp, request.provision_resource_id)
    if request.type == "provision":
        return _event(s.EDC_PROVISION_REQUESTED, EdcProvisionRequested.model_validate(common), tp, key)
    return _event(s.EDC_DEPROVISION_REQUESTED, EdcDeprovisionRequested.model_validate(common), tp, key)


def callback(connector: str, event: EventCallback, body: dict[str, Any]) -> Normalised:
    """The callback as received, plus a typed event for the kinds the flow reacts to."""
    raw = EdcCallbackReceived(
        connector=connector, edc_event_id=event.id, edc_type=event.type, at=event.at_datetime, body=body
    )
    document = _document_id(event.payload)
    received = new_event(
        s.EDC_CALLBACK_RECEIVED,
        raw,
        id_=derived_id(s.EDC_CALLBACK_RECEIVED, connector, event.id),
        subject=document,
        correlationid=document,
        source=INGRESS_SOURCE,
    )
    result = Normalised([received])
    try:
        typed = _typed(connector, event, received.id)
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        result.warnings.append(f"{event.type}: payload.{field_name(first['loc'])}: {first['msg']}; kept raw only")
    else:
        if typed is not None:
            result.events.append(typed)
    return result


def transfer_of(event: EventCallback) -> str | None:
    """The transfer a transfer.process.* callback is about, when it names one."""
    if not event.type.startswith("TransferProcess"):
        return None
    value = event.payload.get("transferProcessId")
    return value if isinstance(value, str) and 0 < len(value) <= 200 else None


def _typed(connector: str, event: EventCallback, cause: str) -> Envelope[Any] | None:
    if event.type in TRANSFER_EVENTS:
        kind = TRANSFER_EVENTS[event.type]
        subject = kind.subject
        transfer = TransferPayload.model_validate(event.payload)
        payload: Any = kind(
            connector=connector,
            edc_event_id=event.id,
            edc_type=event.type,
            transfer_process_id=transfer.transfer_process_id,
            asset_id=transfer.asset_id,
            contract_id=transfer.contract_id,
            side=transfer.type,
            reason=transfer.reason,
        )
        document = transfer.transfer_process_id
    elif event.type in NEGOTIATION_EVENTS:
        subject = NEGOTIATION_EVENTS[event.type]
        negotiation = NegotiationPayload.model_validate(event.payload)
        document = negotiation.contract_negotiation_id
        if subject == s.EDC_NEGOTIATION_FINALIZED:
            agreement = negotiation.contract_agreement
            if agreement is None:
                raise _missing("contractAgreement", event.payload)
            signed = agreement.contract_signing_date
            payload = EdcNegotiationFinalized(
                connector=connector,
                edc_event_id=event.id,
                contract_negotiation_id=document,
                counterparty_id=negotiation.counter_party_id,
                agreement=ContractAgreement(
                    id=agreement.id,
                    asset_id=agreement.asset_id,
                    consumer_id=agreement.consumer_id,
                    provider_id=agreement.provider_id,
                    signed_at=datetime.fromtimestamp(signed, UTC) if signed is not None else None,
                ),
            )
        else:
            payload = EdcNegotiationTerminated(
                connector=connector,
                edc_event_id=event.id,
                contract_negotiation_id=document,
                reason=negotiation.reason,
            )
    else:
        return None
    return new_event(
        subject,
        payload,
        id_=derived_id(subject, connector, event.id),
        subject=document,
        correlationid=document,
        causationid=cause,
        source=INGRESS_SOURCE,
    )


def _missing(name: str, payload: dict[str, Any]) -> ValidationError:
    return ValidationError.from_exception_data("payload", [{"type": "missing", "loc": (name,), "input": payload}])


def _document_id(payload: dict[str, Any]) -> str | None:
    for key in ("transferProcessId", "contractNegotiationId"):
        value = payload.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200:
            return value
    return None


def _event(subject: str, payload: Any, tp: str, key: tuple[str, ...]) -> Envelope[Any]:
    return new_event(
        subject,
        payload,
        id_=derived_id(subject, *key),
        subject=tp,
        correlationid=tp,
        source=INGRESS_SOURCE,
    )
