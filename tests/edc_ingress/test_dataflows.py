"""The Data Plane Signaling endpoint: every message shape accepted, and bad input refused with problem+json,
nothing published and nothing stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from events import subjects as s
from events.streams import StreamSettings, ensure_streams
from gxwf.settings import Settings
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.dataflows import DataFlowDocument
from schemas.provisioning import ProvisionDocument, ProvisionState
from tests.backbone.conftest import stream_events
from tests.edc_fixtures import BODY_LIMIT, KEY, OTHER_KEY
from tests.edc_ingress.dps_messages import SHAPES, SIGNALING, start_018, start_main

OTHER = {"X-Other-Key": OTHER_KEY, "x-api-key": ""}
HEADERS = {"x-api-key": KEY}
POST_ROUTES = [
    "/dataflows/start",
    "/dataflows/prepare",
    *(f"/dataflows/tp-1/{kind}" for kind in ("started", "suspend", "resume", "terminate", "completed", "complete")),
]


def dps_registry() -> ConnectorRegistry:
    return ConnectorRegistry(
        connectors=(
            EdcConnector(name="default", api_key=SecretStr(KEY), signaling_url=SIGNALING),
            # Configured without a signaling URL: a start without callbackAddress cannot be answered.
            EdcConnector(name="other", api_key_header="X-Other-Key", api_key=SecretStr(OTHER_KEY)),
        )
    )


@pytest.fixture
async def dps(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, store: MongoStateStore
) -> AsyncIterator[httpx.AsyncClient]:
    service = IngressService(
        EdcSettings(_env_file=None, edc_body_limit_bytes=BODY_LIMIT, edc_rate_limit_per_second=0),  # type: ignore[call-arg]
        dps_registry(),
        nats_url=stack.nats_for("edc_ingress"),
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10, headers=HEADERS) as client:
        yield client
    await service.stop()


@pytest.fixture
async def untouched(dps: httpx.AsyncClient, js: JetStreamContext, store: MongoStateStore) -> AsyncIterator[None]:
    yield
    assert await stream_events(js, "edc.>") == []
    for name in await store.db.list_collection_names():
        assert await store.db[name].count_documents({}) == 0, name


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["errors"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_a_start_in_each_shape_answers_starting_and_publishes_the_provisioning(
    dps: httpx.AsyncClient, js: JetStreamContext, store: MongoStateStore, shape: str
) -> None:
    message = {**SHAPES[shape]("tp-1"), "somethingNew": {"kept": True}}
    response = await dps.post("/dataflows/start", json=message)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "@type": "DataFlowResponseMessage",
        "dataplaneId": "gxwf",
        "dataFlowId": "tp-1",
        "state": "STARTING",
    }
    assert response.headers["location"].endswith("/dataflows/tp-1")
    status = {"dataflowId": "tp-1", "dataFlowId": "tp-1", "dataplaneId": "gxwf", "state": "STARTING"}
    assert (await dps.get(response.headers["location"])).json() == status
    assert (await dps.get("/dataflows/tp-1/status")).json()["state"] == "STARTING"

    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED, s.EDC_DATAFLOW_SIGNALLED]
    provision, signalled = events[0]["data"], events[1]["data"]
    assert provision["generation"] == "dps" and provision["asset_id"] == "shell-count"
    assert provision["callback_address"] == SIGNALING
    assert (provision["agreement_id"], provision["counter_party_id"]) == ("agreement-tp-1", "did:web:consumer.example")
    assert provision["unmapped"]["somethingNew"] == {"kept": True}
    assert signalled["message_type"] == "start" and signalled["state"] == "STARTING"
    assert signalled["profile"] == "HttpData-PULL" and signalled["extra"]["somethingNew"] == {"kept": True}
    flow = await store.get(DataFlowDocument, "tp-1")
    assert flow is not None and flow.connector == "default" and flow.signaling_url == SIGNALING


async def test_a_second_start_for_the_same_process_is_409(dps: httpx.AsyncClient, js: JetStreamContext) -> None:
    assert (await dps.post("/dataflows/start", json=start_018("tp-1"))).status_code == 202
    body = problem(await dps.post("/dataflows/start", json=start_main("tp-1")), 409)
    assert fields(body) == ["processId"] and "STARTING" in body["detail"]
    assert len(await stream_events(js, "edc.>")) == 2


async def test_a_start_the_bus_could_not_take_is_503_and_the_same_start_resent_is_202_once(
    dps: httpx.AsyncClient, js: JetStreamContext, settings: Settings, store: MongoStateStore
) -> None:
    await js.delete_stream(s.STREAM)
    refused = await dps.post("/dataflows/start", json=start_018("tp-1"))
    assert refused.status_code == 503 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("bus-unavailable") and refused.headers["retry-after"]
    await ensure_streams(js, StreamSettings(duplicate_window_seconds=settings.duplicate_window_seconds))
    # The control plane sends it again: accepted, its events published now; re-sent once more, nothing new.
    for _ in range(2):
        response = await dps.post("/dataflows/start", json=start_018("tp-1"))
        assert response.status_code == 202 and response.json()["state"] == "STARTING", response.text
    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED, s.EDC_DATAFLOW_SIGNALLED]
    # EDC makes a new messageId for each attempt: the same start still, its provisioning request the same event.
    again = {**start_018("tp-1"), "messageId": "m-second-attempt"}
    assert (await dps.post("/dataflows/start", json=again)).status_code == 202
    events = await stream_events(js, "edc.>")
    assert [e["type"] for e in events] == [s.EDC_PROVISION_REQUESTED] + [s.EDC_DATAFLOW_SIGNALLED] * 2
    # Another start for the same process (not the same message) is still refused.
    assert fields(problem(await dps.post("/dataflows/start", json=start_main("tp-1")), 409)) == ["processId"]
    flow = await store.get(DataFlowDocument, "tp-1")
    assert flow is not None and [h.to for h in flow.history] == ["STARTING"]
    assert len(await stream_events(js, "edc.>")) == 3


async def test_a_start_for_a_transfer_provisioned_through_another_interface_is_refused(
    dps: httpx.AsyncClient, js: JetStreamContext, store: MongoStateStore
) -> None:
    for tp, connector in (("tp-own", "default"), ("tp-theirs", "other")):
        doc = ProvisionDocument(id=tp, state=ProvisionState.REQUESTED, connector=connector)
        assert await store.create(doc, event_id=f"e-{tp}")
    body = problem(await dps.post("/dataflows/start", json=start_018("tp-own")), 409)
    assert "another interface" in body["detail"]
    # Another connector's transfer: answered as an unknown one.
    assert fields(problem(await dps.post("/dataflows/start", json=start_018("tp-theirs")), 404)) == ["processId"]
    assert problem(await dps.post("/dataflows/prepare", json={"processId": "tp-theirs"}), 404)
    assert await stream_events(js, "edc.>") == []
    assert await store.db[DataFlowDocument.collection].count_documents({}) == 0


@pytest.mark.usefixtures("untouched")
async def test_starts_that_cannot_be_served_are_400(dps: httpx.AsyncClient) -> None:
    address = {"@type": "DataAddress", "endpointType": "HttpData", "endpoint": "http://x.example"}
    body = problem(await dps.post("/dataflows/start", json={**start_018("tp-1"), "dataAddress": address}), 400)
    assert fields(body) == ["dataAddress"]
    push = {**start_018("tp-1"), "transferType": "HttpData-PUSH"}
    assert fields(problem(await dps.post("/dataflows/start", json=push), 400)) == ["transferType"]
    push = {**start_018("tp-1"), "transferType": {"destinationType": "HttpData", "flowtype": "PUSH"}}
    assert fields(problem(await dps.post("/dataflows/start", json=push), 400)) == ["transferType"]
    # A callbackAddress elsewhere than the connector's signaling URL is never called.
    elsewhere = {**start_018("tp-1"), "callbackAddress": "http://attacker.example/api/signaling"}
    body = problem(await dps.post("/dataflows/start", json=elsewhere), 400)
    assert fields(body) == ["callbackAddress"] and "not under" in body["detail"]
    # The other connector has no signaling URL: nowhere to say the flow started.
    body = problem(await dps.post("/dataflows/start", json=start_main("tp-1"), headers=OTHER), 400)
    assert fields(body) == ["callbackAddress"] and "GXWF_EDC_SIGNALING_URL" in body["detail"]


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("path", POST_ROUTES)
async def test_malformed_json(dps: httpx.AsyncClient, path: str) -> None:
    json_type = {"content-type": "application/json"}
    for raw in (b'{"processId": ', b"\xff\xfe{}", b'{"a": NaN}', b'{"a": "\\ud800"}'):
        assert fields(problem(await dps.post(path, content=raw, headers=json_type), 400)) == ["body"], raw
    assert fields(problem(await dps.post(path, content=b"[1]", headers=json_type), 422)) == ["body"]


@pytest.mark.usefixtures("untouched")
async def test_missing_required_fields_are_named(dps: httpx.AsyncClient) -> None:
    message = start_018("tp-1")
    for name in ("processId", "datasetId", "agreementId", "counterPartyId"):
        without = {k: v for k, v in message.items() if k != name}
        body = problem(await dps.post("/dataflows/start", json=without), 422)
        assert fields(body) == [name] and body["detail"] == f"{name}: Field required"
    assert fields(problem(await dps.post("/dataflows/prepare", json={}), 422)) == ["processId"]
    assert fields(problem(await dps.post("/dataflows/start", json={**message, "processId": ""}), 422)) == ["processId"]


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("path", [p for p in POST_ROUTES if "/tp-1/" in p])
async def test_an_unknown_process_is_404(dps: httpx.AsyncClient, path: str) -> None:
    assert problem(await dps.post(path, json={"reason": "r"}), 404)["type"].endswith("not-found")
    assert problem(await dps.post(path), 404)  # the body is optional
    problem(await dps.get("/dataflows/tp-1"), 404)
    problem(await dps.get("/dataflows/tp-1/status"), 404)


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("path", POST_ROUTES)
async def test_a_wrong_key_is_401_and_an_oversized_body_413(dps: httpx.AsyncClient, path: str) -> None:
    for headers in ({"x-api-key": "wrong-key-0123456789abcdef"}, {"x-api-key": ""}):
        body = problem(await dps.post(path, json=start_018("tp-1"), headers=headers), 401)
        assert fields(body) == ["x-api-key or x-other-key"]
    problem(await dps.get("/dataflows/tp-1", headers={"x-api-key": "wrong"}), 401)
    big = {**start_018("tp-1"), "metadata": {"padding": "x" * BODY_LIMIT}}
    assert fields(problem(await dps.post(path, json=big), 413)) == ["body"]


async def test_another_connectors_flow_is_unknown_to_it(dps: httpx.AsyncClient, js: JetStreamContext) -> None:
    assert (await dps.post("/dataflows/start", json=start_018("tp-1"))).status_code == 202
    before = len(await stream_events(js, "edc.>"))
    for path in POST_ROUTES[2:]:
        problem(await dps.post(path, json={}, headers=OTHER), 404)
    problem(await dps.get("/dataflows/tp-1", headers=OTHER), 404)
    # (It has no signaling URL of its own: refused before the flow is even looked at.)
    assert (await dps.post("/dataflows/start", json=start_018("tp-1"), headers=OTHER)).status_code == 400
    assert len(await stream_events(js, "edc.>")) == before
    assert (await dps.get("/dataflows/tp-1")).json()["state"] == "STARTING"


async def test_a_transition_the_state_machine_forbids_is_409_naming_the_state(
    dps: httpx.AsyncClient, js: JetStreamContext, store: MongoStateStore
) -> None:
    assert (await dps.post("/dataflows/start", json=start_018("tp-1"))).status_code == 202
    # Nothing was started yet: no token to suspend or resume; `started` is a consumer-side message.
    for kind in ("suspend", "resume", "started"):
        body = problem(await dps.post(f"/dataflows/tp-1/{kind}"), 409)
        assert body["errors"] == [{"field": "state", "message": "STARTING"}] and kind in body["detail"]
    response = await dps.post("/dataflows/tp-1/terminate", json={"reason": "stop it"})
    assert response.status_code == 200 and response.json()["state"] == "TERMINATED"
    before = await stream_events(js, "edc.>")
    assert [e["type"] for e in before[2:]] == [s.EDC_DEPROVISION_REQUESTED, s.EDC_DATAFLOW_SIGNALLED]
    # Terminal: it never changes again.
    for kind in ("terminate", "completed", "complete", "suspend", "resume"):
        body = problem(await dps.post(f"/dataflows/tp-1/{kind}"), 409)
        assert body["errors"] == [{"field": "state", "message": "TERMINATED"}]
    flow = await store.get(DataFlowDocument, "tp-1")
    assert flow is not None and [h.to for h in flow.history] == ["STARTING", "TERMINATED"]
    assert flow.reason == "stop it"
    assert len(await stream_events(js, "edc.>")) == len(before)


async def test_prepare_answers_prepared(dps: httpx.AsyncClient, js: JetStreamContext) -> None:
    response = await dps.post("/dataflows/prepare", json={"processId": "tp-c", "messageId": "m1", "new": 1})
    assert response.status_code == 200 and response.json()["state"] == "PREPARED"
    assert (await dps.get("/dataflows/tp-c")).json() == {
        "dataflowId": "tp-c",
        "dataFlowId": "tp-c",
        "dataplaneId": "gxwf",
        "state": "PREPARED",
    }
    assert problem(await dps.post("/dataflows/start", json=start_018("tp-c")), 409)
    # Terminated: nothing was provisioned for it, so nothing is torn down.
    assert (await dps.post("/dataflows/tp-c/terminate")).json()["state"] == "TERMINATED"
    assert [e["type"] for e in await stream_events(js, "edc.>")] == [s.EDC_DATAFLOW_SIGNALLED] * 2
