"""What EDC connectors send, field for field (Jackson JSON, nulls included), validated at the door.

Only what the flow relies on is required; everything else a connector sends is accepted and kept, so a newer
EDC that adds fields keeps working. Field names in errors are EDC's own (camelCase aliases).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StringConstraints

from events.payloads.common import Id, Url

# Latest instant Python's datetime can hold, in EDC's epoch milliseconds and seconds.
MAX_EPOCH_MILLIS = 253_402_300_799_999
MAX_EPOCH_SECONDS = MAX_EPOCH_MILLIS // 1000

# Ids that become an event's subject and correlation id, which the envelope bounds at 200 characters.
DocumentId = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$")]
EdcTypeName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:$-]+$")]


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


RequestType = Annotated[Literal["provision", "deprovision"], BeforeValidator(_lower)]
Side = Annotated[Literal["CONSUMER", "PROVIDER"], BeforeValidator(_upper)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=False, frozen=True)

    def unmapped(self) -> dict[str, Any]:
        """Fields the connector sent that have no field of their own here."""
        return dict(self.model_extra or {})


class ControlPlaneProvisionRequest(_Wire):
    """`provision-http` of EDC milestone-7 to 0.15: POSTed to each `provisioner.http.entries.<name>.endpoint`."""

    transfer_process_id: DocumentId = Field(alias="transferProcessId")
    asset_id: Id = Field(alias="assetId")
    callback_address: Url = Field(alias="callbackAddress")
    resource_definition_id: Id | None = Field(default=None, alias="resourceDefinitionId")
    # Absent before EDC 0.11, where provision and deprovision requests look the same.
    type: RequestType | None = None
    policy: dict[str, Any] | None = None


class DataPlaneProvisionRequest(_Wire):
    """`data-plane-provision-http` of EDC 0.14 to 0.18: POSTed to a `ProvisionHttp` asset's `baseUrl`."""

    type: RequestType
    provision_resource_id: Id = Field(alias="provisionResourceId")
    flow_id: DocumentId = Field(alias="flowId", description="The provider transfer process id")
    callback_address: Url = Field(alias="callbackAddress")


class EventCallback(_Wire):
    """An EDC event callback envelope, stable since EDC 0.1: `{id, at, payload, type}`."""

    id: Id
    at: StrictInt = Field(ge=0, le=MAX_EPOCH_MILLIS, description="Epoch milliseconds")
    type: EdcTypeName = Field(description="Event class name, e.g. TransferProcessStarted")
    payload: dict[str, Any]

    @property
    def at_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.at / 1000, UTC)


def _truncate(value: Any) -> Any:
    return value[:4000] if isinstance(value, str) else value


Reason = Annotated[str, BeforeValidator(_truncate)]


class TransferPayload(_Wire):
    transfer_process_id: DocumentId = Field(alias="transferProcessId")
    asset_id: Id | None = Field(default=None, alias="assetId")
    contract_id: Id | None = Field(default=None, alias="contractId")
    type: Side | None = None
    reason: Reason | None = None


class AgreementWire(_Wire):
    id: Id
    asset_id: Id = Field(alias="assetId")
    consumer_id: Id = Field(alias="consumerId")
    provider_id: Id = Field(alias="providerId")
    contract_signing_date: StrictInt | None = Field(
        default=None, alias="contractSigningDate", ge=0, le=MAX_EPOCH_SECONDS, description="Epoch seconds"
    )


class NegotiationPayload(_Wire):
    contract_negotiation_id: DocumentId = Field(alias="contractNegotiationId")
    counter_party_id: Id | None = Field(default=None, alias="counterPartyId")
    contract_agreement: AgreementWire | None = Field(default=None, alias="contractAgreement")
    reason: Reason | None = None
