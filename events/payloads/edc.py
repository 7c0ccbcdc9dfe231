"""What the EDC side tells us: provisioner requests (normalised) and connector event callbacks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field

from events.payloads.common import Id, Payload, Reason, Url

ProvisionerGeneration = Literal["control-plane-http", "data-plane-provision-http", "dps", "nats"]
RequestType = Literal["provision", "deprovision"]

_DECLARED = (
    "The request's `type` as sent. Absent from EDC before 0.11, whose deprovision requests look like provision "
    "requests: the ingress then classifies by the transfer's provisioning state."
)
_UNMAPPED = "Request fields with no field of their own here, kept as the connector sent them"


class EdcProvisionRequested(Payload):
    """A connector asks for a consumer's WorkflowApi, whatever EDC generation sent it."""

    subject: ClassVar[str] = "edc.provision.requested"

    connector: Id = Field(description="Name of the configured connector that called")
    generation: ProvisionerGeneration
    transfer_process_id: Id
    asset_id: Id | None = Field(default=None, description="Absent in data-plane requests: read from the agreement")
    callback_address: Url
    resource_definition_id: Id | None = None
    provision_resource_id: Id | None = None
    flow_id: Id | None = None
    policy: dict[str, Any] | None = None
    declared_type: RequestType | None = Field(default=None, description=_DECLARED)
    unmapped: dict[str, Any] = Field(default_factory=dict, description=_UNMAPPED)
    agreement_id: Id | None = Field(
        default=None, description="DPS: the contract agreement the start message names (agreementId)"
    )
    counter_party_id: Id | None = Field(
        default=None, description="DPS: the consumer participant the start message names (counterPartyId)"
    )


class EdcDeprovisionRequested(Payload):
    subject: ClassVar[str] = "edc.deprovision.requested"

    connector: Id
    generation: ProvisionerGeneration
    transfer_process_id: Id
    callback_address: Url | None = None
    resource_definition_id: Id | None = None
    provision_resource_id: Id | None = None
    flow_id: Id | None = None
    reason: Reason | None = None
    asset_id: Id | None = None
    declared_type: RequestType | None = Field(default=None, description=_DECLARED)
    unmapped: dict[str, Any] = Field(default_factory=dict, description=_UNMAPPED)


class EdcCallbackReceived(Payload):
    """A connector event callback exactly as received, kept for audit and the dashboard."""

    subject: ClassVar[str] = "edc.callback.received"

    connector: Id
    edc_event_id: Id
    edc_type: str = Field(max_length=200, description="e.g. ContractNegotiationFinalized")
    at: datetime
    body: dict[str, Any]


class ContractAgreement(Payload):
    id: Id
    asset_id: Id
    consumer_id: Id
    provider_id: Id
    signed_at: datetime | None = None


class EdcNegotiationFinalized(Payload):
    subject: ClassVar[str] = "edc.negotiation.finalized"

    connector: Id
    edc_event_id: Id
    contract_negotiation_id: Id
    counterparty_id: Id | None = None
    agreement: ContractAgreement


class EdcNegotiationTerminated(Payload):
    subject: ClassVar[str] = "edc.negotiation.terminated"

    connector: Id
    edc_event_id: Id
    contract_negotiation_id: Id
    reason: Reason | None = None


class EdcTransferEvent(Payload):
    """transfer.process.* callbacks that matter to the flow (started, completed, terminated, ...)."""

    connector: Id
    edc_event_id: Id
    edc_type: str = Field(max_length=200)
    transfer_process_id: Id
    asset_id: Id | None = None
    contract_id: Id | None = None
    side: Literal["CONSUMER", "PROVIDER"] | None = None
    reason: Reason | None = None


# One class per subject, so a payload names where it travels; the fields are the same for every transfer event.
class EdcTransferStarted(EdcTransferEvent):
    """A connector's transfer process started (transfer.process.started)."""

    subject: ClassVar[str] = "edc.transfer.started"


class EdcTransferCompleted(EdcTransferEvent):
    """A connector's transfer process completed (transfer.process.completed): its consumer is deprovisioned."""

    subject: ClassVar[str] = "edc.transfer.completed"


class EdcTransferTerminated(EdcTransferEvent):
    """A connector's transfer process was terminated (transfer.process.terminated): its consumer is
    deprovisioned."""

    subject: ClassVar[str] = "edc.transfer.terminated"


DataFlowMessageType = Literal["prepare", "start", "started", "suspend", "resume", "terminate", "completed"]


class EdcDataFlowSignalled(Payload):
    """A Data Plane Signaling message a connector's control plane sent, as accepted, with the data flow's state
    after it: the record the dashboard's timeline shows."""

    subject: ClassVar[str] = "edc.dataflow.signalled"

    connector: Id
    message_type: DataFlowMessageType
    process_id: Id
    message_id: Id | None = None
    state: str = Field(max_length=40, description="The data flow's state after the message, e.g. STARTING")
    reason: Reason | None = None
    profile: str | None = Field(default=None, max_length=400, description="transferType or profile, as sent")
    extra: dict[str, Any] = Field(default_factory=dict, description="The message's other fields, as sent")
