"""Bodies exactly as each EDC generation writes them (Jackson: nulls included, epoch millis, class names)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from edc_simulator.ledger import Agreement, Transfer
from edc_simulator.versions import EdcVersion

EDC_NAMESPACE = "https://w3id.org/edc/v0.0.1/ns/"


def jackson_policy(target: str) -> dict[str, Any]:
    """A policy as the control-plane provisioner sends it: Jackson's shape, usually filtered empty."""
    return {
        "permissions": [],
        "prohibitions": [],
        "obligations": [],
        "profiles": [],
        "extensibleProperties": {},
        "inheritsFrom": None,
        "assigner": None,
        "assignee": None,
        "target": target,
        "@type": {"@policytype": "contract"},
    }


def provision_request(
    version: EdcVersion, transfer: Transfer, callback_address: str, action: str = "provision"
) -> dict[str, Any]:
    if version.provisioner == "data-plane":
        return {
            "type": action,
            "provisionResourceId": transfer.provision_resource_id,
            "flowId": transfer.id,
            "callbackAddress": callback_address,
        }
    body: dict[str, Any] = {
        "assetId": transfer.asset_id,
        "transferProcessId": transfer.id,
        "policy": jackson_policy(transfer.asset_id),
        "callbackAddress": callback_address,
        "resourceDefinitionId": transfer.resource_definition_id,
    }
    if version.typed_requests:
        body["type"] = action
    return body


def transfer_event(
    version: EdcVersion, transfer: Transfer, edc_type: str, *, reason: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transferProcessId": transfer.id,
        "callbackAddresses": [],
        "assetId": transfer.asset_id,
        "type": transfer.type,
        "contractId": transfer.agreement.id,
        "protocol": "dataspace-protocol-http",
    }
    if version.participant_context:
        payload["participantContextId"] = "provider"
    if edc_type == "TransferProcessStarted":
        payload["dataAddress"] = None  # provider side: the consumer gets the EDR, not us
    if edc_type in ("TransferProcessTerminated", "TransferProcessSuspended"):
        payload["reason"] = reason
    return _envelope(edc_type, payload)


def negotiation_event(
    version: EdcVersion, agreement: Agreement, edc_type: str = "ContractNegotiationFinalized"
) -> dict[str, Any]:
    offer = {"id": f"{agreement.id}:offer", "policy": jackson_policy(agreement.asset_id), "assetId": agreement.asset_id}
    payload: dict[str, Any] = {
        "contractNegotiationId": f"negotiation-{agreement.id}",
        "counterPartyAddress": "http://consumer.example:8282/api/dsp",
        "counterPartyId": agreement.consumer_id,
        "callbackAddresses": [],
        "contractOffers": [offer],
        "lastContractOffer": offer,
        "protocol": "dataspace-protocol-http",
    }
    if version.participant_context:
        payload["participantContextId"] = "provider"
    if edc_type == "ContractNegotiationFinalized":
        contract: dict[str, Any] = {
            "id": agreement.id,
            "providerId": agreement.provider_id,
            "consumerId": agreement.consumer_id,
            "contractSigningDate": agreement.signed_at,
            "assetId": agreement.asset_id,
            "policy": jackson_policy(agreement.asset_id),
        }
        if version.agreement_id_field:
            contract["agreementId"] = agreement.id
        if version.participant_context:
            contract["participantContextId"] = "provider"
        payload["contractAgreement"] = contract
    return _envelope(edc_type, payload)


def _envelope(edc_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "at": int(time.time() * 1000), "payload": payload, "type": edc_type}


def management_transfer(version: EdcVersion, transfer: Transfer) -> dict[str, Any]:
    return _jsonld(
        version,
        "TransferProcess",
        transfer.id,
        {
            "correlationId": str(uuid.uuid5(uuid.NAMESPACE_URL, transfer.id)),
            "state": transfer.state,
            "stateTimestamp": transfer.state_timestamp,
            "type": transfer.type,
            "assetId": transfer.asset_id,
            "contractId": transfer.agreement.id,
            "transferType": "HttpData-PULL",
            "callbackAddresses": [],
            "errorDetail": None,
        },
    )


def management_agreement(version: EdcVersion, agreement: Agreement) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "assetId": agreement.asset_id,
        "contractSigningDate": agreement.signed_at,
        "consumerId": agreement.consumer_id,
        "providerId": agreement.provider_id,
        "policy": {"@id": f"{agreement.id}:policy", "@type": "odrl:Agreement", "odrl:target": agreement.asset_id},
    }
    if version.agreement_id_field:
        fields["agreementId"] = agreement.id
    return _jsonld(version, "ContractAgreement", agreement.id, fields)


def _jsonld(version: EdcVersion, kind: str, id_: str, fields: dict[str, Any]) -> dict[str, Any]:
    prefix = "edc:" if version.prefixed_properties else ""
    return {
        "@id": id_,
        "@type": f"{prefix}{kind}",
        **{f"{prefix}{k}": v for k, v in fields.items()},
        "@context": version.context,
    }
