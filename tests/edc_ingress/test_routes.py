"""What each EDC generation sends arrives on the bus as our `edc.*` events, once, from the right connector."""

from __future__ import annotations

from typing import Any

import httpx
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from schemas.provisioning import ProvisionDocument, ProvisionState
from tests.backbone.conftest import stream_events
from tests.edc_fixtures import OTHER_KEY, RunningIngress

TP = "6e1c6b52-3c2b-4b0b-9a63-2f1c9d7e0a11"
CALLBACK = "http://provider-connector:8181/api/management/callback"
POLICY = {
    "permissions": [],
    "prohibitions": [],
    "obligations": [],
    "extensibleProperties": {},
    "inheritsFrom": None,
    "assigner": None,
    "assignee": None,
    "target": "carla-minimal",
    "@type": {"@policytype": "set"},
}


def control_plane(kind: str | None = "provision", tp: str = TP) -> dict[str, Any]:
    """HttpProvisionerRequest as EDC's Jackson writes it (no `type` before 0.11)."""
    body: dict[str, Any] = {
        "assetId": "carla-minimal",
        "transferProcessId": tp,
        "policy": POLICY,
        "callbackAddress": CALLBACK,
        "resourceDefinitionId": "3f1d0e55-rd",
    }
    if kind is not None:
        body["type"] = kind
    return body


def data_plane(kind: str = "provision") -> dict[str, Any]:
    return {
        "type": kind,
        "provisionResourceId": "prov-res-1",
        "flowId": TP,
        "callbackAddress": "http://provider-dataplane:8765/provisioning",
    }


EVENT_ID = "4bf1b2a0-0000-4c1d-9e2b-3a4f5c6d7e8f"


def callback(edc_type: str, payload: dict[str, Any], event_id: str = EVENT_ID) -> dict[str, Any]:
    return {"id": event_id, "at": 1764063000123, "payload": payload, "type": edc_type}


def transfer_payload(**extra: Any) -> dict[str, Any]:
    return {
        "transferProcessId": TP,
        "callbackAddresses": [],
        "assetId": "carla-minimal",
        "type": "PROVIDER",
        "contractId": "agreement-1",
        "participantContextId": "provider",
        "protocol": "dataspace-protocol-http",
        **extra,
    }


def accepted(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["accepted"]]


async def test_a_provision_request_resent_while_waiting_is_one_event(
    ingress: RunningIngress, js: JetStreamContext
) -> None:
    ids = [accepted(await ingress.post("/edc/provisioner", control_plane())) for _ in range(3)]
    assert ids[0] == ids[1] == ids[2]

    (event,) = await stream_events(js, "edc.>")
    assert event["id"] == ids[0][0]
    assert event["type"] == s.EDC_PROVISION_REQUESTED
    assert event["subject"] == TP and event["correlationid"] == TP
    data = event["data"]
    assert data["connector"] == "default"
    assert data["generation"] == "control-plane-http"
    assert data["transfer_process_id"] == TP and data["asset_id"] == "carla-minimal"
    assert data["callback_address"] == CALLBACK and data["resource_definition_id"] == "3f1d0e55-rd"
    assert data["declared_type"] == "provision" and data["policy"] == POLICY


async def test_a_typed_deprovision_request_becomes_deprovision_requested(
    ingress: RunningIngress, js: JetStreamContext
) -> None:
    accepted(await ingress.post("/edc/provisioner", control_plane("provision")))
    accepted(await ingress.post("/edc/provisioner", control_plane("DEPROVISION")))
    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED, s.EDC_DEPROVISION_REQUESTED]
    assert events[1]["data"]["transfer_process_id"] == TP and events[1]["data"]["asset_id"] == "carla-minimal"


async def test_an_untyped_request_is_a_deprovision_once_provisioning_settled(
    ingress: RunningIngress, js: JetStreamContext, store: MongoStateStore
) -> None:
    # EDC before 0.11 sends deprovisioning to the same endpoint with the same body.
    first = accepted(await ingress.post("/edc/provisioner", control_plane(None)))
    again = accepted(await ingress.post("/edc/provisioner", control_plane(None)))
    assert first == again

    await store.create(ProvisionDocument(_id=TP, state=ProvisionState.REQUESTED, connector="default"), event_id="e0")
    for step, to in enumerate((ProvisionState.DEPLOYING, ProvisionState.GRANTING)):
        assert (await store.transition(ProvisionDocument, TP, to, event_id=f"e{step + 1}")).changed
    # Still provisioning: an untyped request is the connector asking again.
    assert accepted(await ingress.post("/edc/provisioner", control_plane(None))) == first
    assert (await store.transition(ProvisionDocument, TP, ProvisionState.GRANTED, event_id="e9")).changed
    accepted(await ingress.post("/edc/provisioner", control_plane(None)))

    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED, s.EDC_DEPROVISION_REQUESTED]
    assert all(e["data"]["declared_type"] is None for e in events)


async def test_data_plane_provision_http_requests(ingress: RunningIngress, js: JetStreamContext) -> None:
    for kind in ("provision", "provision", "deprovision"):
        accepted(await ingress.post("/edc/dataplane/provision", data_plane(kind)))
    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED, s.EDC_DEPROVISION_REQUESTED]
    data = events[0]["data"]
    assert data["generation"] == "data-plane-provision-http"
    assert data["transfer_process_id"] == TP and data["flow_id"] == TP
    assert data["provision_resource_id"] == "prov-res-1" and data["asset_id"] is None
    assert data["callback_address"] == "http://provider-dataplane:8765/provisioning"


async def test_a_transfer_event_is_kept_raw_and_typed(ingress: RunningIngress, js: JetStreamContext) -> None:
    body = callback("TransferProcessStarted", transfer_payload(dataAddress=None))
    ids = accepted(await ingress.post("/edc/events", body))
    assert accepted(await ingress.post("/edc/events", body)) == ids  # EDC's retry of a transactional callback

    raw, typed = await stream_events(js, "edc.>")
    assert [raw["type"], typed["type"]] == [s.EDC_CALLBACK_RECEIVED, s.EDC_TRANSFER_STARTED]
    assert raw["data"]["body"] == body and raw["data"]["edc_type"] == "TransferProcessStarted"
    assert raw["data"]["at"] == "2025-11-25T09:30:00.123000Z"
    assert typed["causationid"] == raw["id"] and typed["subject"] == TP
    assert typed["data"]["side"] == "PROVIDER" and typed["data"]["contract_id"] == "agreement-1"


async def test_terminated_and_completed_transfers(ingress: RunningIngress, js: JetStreamContext) -> None:
    accepted(await ingress.post("/edc/events", callback("TransferProcessCompleted", transfer_payload(), "ev-1")))
    terminated = transfer_payload(reason="consumer went away")
    accepted(await ingress.post("/edc/events", callback("TransferProcessTerminated", terminated, "ev-2")))
    typed = [e for e in await stream_events(js, "edc.transfer.>")]
    assert [e["type"] for e in typed] == [s.EDC_TRANSFER_COMPLETED, s.EDC_TRANSFER_TERMINATED]
    assert typed[1]["data"]["reason"] == "consumer went away"


async def test_a_finalized_negotiation_carries_the_agreement(ingress: RunningIngress, js: JetStreamContext) -> None:
    payload = {
        "contractNegotiationId": "cn-1",
        "counterPartyAddress": "http://consumer:8282/protocol",
        "counterPartyId": "did:web:consumer",
        "callbackAddresses": [],
        "contractOffers": [],
        "protocol": "dataspace-protocol-http",
        "contractAgreement": {
            "id": "agreement-1",
            "providerId": "did:web:provider",
            "consumerId": "did:web:consumer",
            "contractSigningDate": 1764063000,
            "assetId": "carla-minimal",
            "policy": POLICY,
        },
    }
    accepted(await ingress.post("/edc/events", callback("ContractNegotiationFinalized", payload)))
    (typed,) = await stream_events(js, s.EDC_NEGOTIATION_FINALIZED)
    agreement = typed["data"]["agreement"]
    assert agreement["consumer_id"] == "did:web:consumer" and agreement["asset_id"] == "carla-minimal"
    assert agreement["signed_at"] == "2025-11-25T09:30:00Z"
    assert typed["subject"] == "cn-1"


async def test_unknown_types_and_unusable_payloads_are_accepted_and_kept_raw(
    ingress: RunningIngress, js: JetStreamContext
) -> None:
    # A newer EDC's event, and a finalized negotiation without its agreement: never a 4xx EDC retries forever.
    unknown = callback("TransferProcessResumed", transfer_payload(newField={"x": 1}), "ev-1")
    broken = callback("ContractNegotiationFinalized", {"contractNegotiationId": "cn-2"}, "ev-2")
    accepted(await ingress.post("/edc/events", unknown))
    response = await ingress.post("/edc/events", broken)
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert warning == "ContractNegotiationFinalized: payload.contractAgreement: Field required; kept raw only"

    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_CALLBACK_RECEIVED, s.EDC_CALLBACK_RECEIVED]
    assert events[0]["data"]["body"]["payload"]["newField"] == {"x": 1}


async def test_each_connector_is_known_by_its_own_key(ingress: RunningIngress, js: JetStreamContext) -> None:
    response = await ingress.post("/edc/provisioner", control_plane(tp="tp-other"), key=OTHER_KEY, header="x-other-key")
    accepted(response)
    # Stock provisioners cannot add headers: the key may ride in the configured endpoint URL instead.
    response = await ingress.client.post(
        "/edc/dataplane/provision", json=data_plane(), params={"x-api-key": "test-key-0123456789abcdef"}
    )
    accepted(response)
    events = await stream_events(js, "edc.>")
    assert [e["data"]["connector"] for e in events] == ["other", "default"]


async def test_health_and_readiness(ingress: RunningIngress) -> None:
    assert (await ingress.client.get("/healthz")).json() == {"status": "alive"}
    ready = await ingress.client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "checks": {"nats": "ok", "mongo": "ok"}}
