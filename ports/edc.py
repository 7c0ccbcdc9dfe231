"""What handlers need from an EDC connector: its management API, and answers to its provisioner requests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from events.payloads.edc import EdcDeprovisionRequested, EdcProvisionRequested, ProvisionerGeneration
from schemas.edc_calls import EdcCall


@dataclass(frozen=True)
class TransferProcessInfo:
    id: str
    state: str | None
    asset_id: str | None
    contract_id: str | None
    type: str | None = None
    correlation_id: str | None = None


@dataclass(frozen=True)
class AgreementInfo:
    id: str
    asset_id: str | None
    consumer_id: str | None
    provider_id: str | None
    signed_at: datetime | None = None


@dataclass(frozen=True)
class AccessAddress:
    """An HttpData data address: the consumer's WorkflowApi and the header (authKey) and token (authCode) that
    open it. EDC hands it to the consumer through its data plane."""

    base_url: str
    auth_code: str = field(repr=False)
    auth_key: str = "Authorization"
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The bare token (Data Plane Signaling sends it with authType bearer, not as a header value)."""
        return self.auth_code.removeprefix("Bearer ")

    def properties(self) -> dict[str, str]:
        return {
            **self.extra,
            "type": "HttpData",
            "baseUrl": self.base_url,
            "authKey": self.auth_key,
            "authCode": self.auth_code,
        }


@dataclass(frozen=True)
class ProvisionTarget:
    """Where and how to answer one provision request, in the request's own generation."""

    connector: str
    generation: ProvisionerGeneration
    transfer_process_id: str
    callback_address: str
    asset_id: str | None = None
    resource_definition_id: str | None = None
    provision_resource_id: str | None = None
    flow_id: str | None = None

    @classmethod
    def of(
        cls, request: EdcProvisionRequested | EdcDeprovisionRequested, callback_address: str | None = None
    ) -> ProvisionTarget:
        address = callback_address or request.callback_address
        if address is None:
            raise ValueError(f"{request.transfer_process_id}: the request carries no callback address")
        return cls(
            connector=request.connector,
            generation=request.generation,
            transfer_process_id=request.transfer_process_id,
            callback_address=address,
            asset_id=request.asset_id,
            resource_definition_id=request.resource_definition_id,
            provision_resource_id=request.provision_resource_id,
            flow_id=request.flow_id,
        )


class EdcError(Exception):
    """A call to a connector failed for good: a 4xx, or 5xx/network errors after every retry."""

    def __init__(self, operation: str, message: str, *, status: int | None = None, retryable: bool = False) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.status = status
        self.retryable = retryable


class EdcNotFound(EdcError):
    pass


class EdcCallbackRefused(EdcError):
    """The callback address is not under any callback base configured for the connector: nobody was called."""


class EdcNotConfigured(EdcError):
    """Nothing says where the connector's management API is: neither configured nor registered."""


class EdcClient(Protocol):
    async def transfer_process(self, connector: str, transfer_process_id: str) -> TransferProcessInfo: ...

    async def contract_agreement(self, connector: str, agreement_id: str) -> AgreementInfo: ...

    async def verify_callback(self, target: ProvisionTarget) -> None:
        """EdcCallbackRefused (and the refusal recorded) when the target's callback address is not under a
        callback base configured for its connector: such a provisioning is refused before anything is built."""
        ...

    async def provisioned(self, target: ProvisionTarget, access: AccessAddress, *, resource_name: str) -> None:
        """Tell the connector the resource is ready: `resource_name` must be unique per transfer (EDC stores
        the address in its vault under it)."""
        ...

    async def deprovisioned(
        self, target: ProvisionTarget, *, provisioned_resource_id: str | None = None, error: str | None = None
    ) -> None: ...


class EdcCallLog(Protocol):
    """Where every call to a connector, and how it ended, is recorded."""

    async def record(self, call: EdcCall) -> None: ...

    async def calls(self, **equals: Any) -> list[EdcCall]: ...
