"""Data Plane Signaling (DPS) v1 messages, in every shape the connectors and the spec send, normalised.

EDC 0.18 names the transfer type `transferType` (a string such as "HttpData-PULL"), EDC's main line `profile`,
the spec's examples `transferType` as an object `{destinationType, flowtype}`. A data address comes with its
properties in `endpointProperties` (a list of name/value pairs) or flattened at the top level. Only what the
flow relies on is required; every other field is kept (`extra`) and never a reason to refuse.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edc_ingress.normalise import INGRESS_SOURCE
from edc_ingress.wire import DocumentId, Reason, _Wire
from events import subjects as s
from events.envelope import Envelope, derived_id, new_event
from events.payloads.common import Id
from events.payloads.edc import (
    DataFlowMessageType,
    EdcDataFlowSignalled,
    EdcDeprovisionRequested,
    EdcProvisionRequested,
)

HTTP_PULL = "https://w3id.org/dspace-sig/profile/http-pull"
FlowType = Literal["PULL", "PUSH"]


class StartMessage(_Wire):
    """DataFlowStartMessage (provider side): the transfer, the agreement, the dataset and the consumer."""

    process_id: DocumentId = Field(alias="processId", description="The transfer process id (= dataFlowId)")
    dataset_id: Id = Field(alias="datasetId", description="The EDC asset id")
    agreement_id: Id = Field(alias="agreementId")
    counter_party_id: Id = Field(alias="counterPartyId", description="The consumer participant")
    message_id: Id | None = Field(default=None, alias="messageId")
    participant_id: Id | None = Field(default=None, alias="participantId")
    callback_address: str | None = Field(default=None, alias="callbackAddress", max_length=2000)
    transfer_type: str | dict[str, Any] | None = Field(default=None, alias="transferType")
    profile: str | None = Field(default=None, max_length=400)
    data_address: dict[str, Any] | None = Field(default=None, alias="dataAddress")

    def flow_type(self) -> FlowType:
        """PULL unless the message says PUSH, in whichever field its generation uses."""
        declared = self.transfer_type
        if isinstance(declared, dict):
            kind = declared.get("flowtype", declared.get("flowType"))
            return "PUSH" if isinstance(kind, str) and kind.upper() == "PUSH" else "PULL"
        for text in (declared, self.profile):
            if isinstance(text, str) and text.upper().rstrip("/").endswith(("-PUSH", "/PUSH", "HTTP-PUSH")):
                return "PUSH"
        return "PULL"

    def profile_name(self) -> str | None:
        if isinstance(self.transfer_type, str):
            return self.transfer_type[:400]
        if isinstance(self.transfer_type, dict):
            destination = self.transfer_type.get("destinationType")
            flow = self.transfer_type.get("flowtype", self.transfer_type.get("flowType"))
            return f"{destination}-{flow}"[:400]
        return self.profile


class PrepareMessage(_Wire):
    """DataFlowPrepareMessage (consumer side): only the process id matters to a provider-side data plane."""

    process_id: DocumentId = Field(alias="processId")
    message_id: Id | None = Field(default=None, alias="messageId")


class TransitionMessage(_Wire):
    """The body of /{id}/suspend, /resume, /terminate, /completed, /started: all optional, `reason` kept."""

    message_id: Id | None = Field(default=None, alias="messageId")
    reason: Reason | None = None


def address_properties(address: dict[str, Any]) -> dict[str, Any]:
    """A data address's properties whichever way it was sent: endpointProperties pairs or flattened."""
    flat = {k: v for k, v in address.items() if k != "endpointProperties"}
    pairs = address.get("endpointProperties")
    if isinstance(pairs, list):
        for pair in pairs:
            if isinstance(pair, dict) and isinstance(pair.get("name"), str):
                flat[pair["name"]] = pair.get("value")
    return flat


def pull_address(endpoint: str, token: str) -> dict[str, Any]:
    """The DataAddress a consumer pulls with: its WorkflowApi and the bearer token that opens it."""
    return {
        "@type": "DataAddress",
        "endpointType": HTTP_PULL,
        "endpoint": endpoint,
        "endpointProperties": [
            {"@type": "EndpointProperty", "name": "authorization", "value": token},
            {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
        ],
    }


def provision_requested(connector: str, message: StartMessage, signaling: str) -> Envelope[Any]:
    tp = message.process_id
    payload = EdcProvisionRequested(
        connector=connector,
        generation="dps",
        transfer_process_id=tp,
        asset_id=message.dataset_id,
        callback_address=signaling,
        flow_id=tp,
        agreement_id=message.agreement_id,
        counter_party_id=message.counter_party_id,
        unmapped={
            **message.unmapped(),
            **({"participantId": message.participant_id} if message.participant_id else {}),
            **({"messageId": message.message_id} if message.message_id else {}),
            **({"profile": message.profile_name()} if message.profile_name() else {}),
        },
    )
    return _event(s.EDC_PROVISION_REQUESTED, payload, tp, ("dps", connector, tp))


def deprovision_requested(connector: str, tp: str, kind: DataFlowMessageType, reason: str | None) -> Envelope[Any]:
    payload = EdcDeprovisionRequested(
        connector=connector,
        generation="dps",
        transfer_process_id=tp,
        flow_id=tp,
        reason=reason or f"data flow {'completed' if kind == 'completed' else 'terminated'}",
    )
    return _event(s.EDC_DEPROVISION_REQUESTED, payload, tp, ("dps", connector, tp, kind))


def signalled(
    connector: str,
    kind: DataFlowMessageType,
    tp: str,
    state: str,
    *,
    message_id: str | None,
    reason: str | None = None,
    profile: str | None = None,
    extra: dict[str, Any] | None = None,
    key: str = "",
) -> Envelope[Any]:
    payload = EdcDataFlowSignalled(
        connector=connector,
        message_type=kind,
        process_id=tp,
        message_id=message_id,
        state=state,
        reason=reason,
        profile=profile,
        extra=extra or {},
    )
    # A re-sent message (same messageId) is one event; without a messageId, `key` tells them apart.
    return _event(s.EDC_DATAFLOW_SIGNALLED, payload, tp, ("dps", connector, tp, kind, message_id or key or state))


def _event(subject: str, payload: Any, tp: str, key: tuple[str, ...]) -> Envelope[Any]:
    return new_event(
        subject, payload, id_=derived_id(subject, *key), subject=tp, correlationid=tp, source=INGRESS_SOURCE
    )
