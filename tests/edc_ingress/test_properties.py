"""Whatever JSON (or bytes) a connector throws at any route: a 2xx with events, or a 4xx problem; never a 5xx."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.js.errors import NotFoundError

from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from events.streams import ensure_streams
from tests.edc_fixtures import KEY, registry
from tests.edc_ingress.test_routes import callback, control_plane, data_plane, transfer_payload

HEADERS = {"x-api-key": KEY}
EDC_TYPES = [
    "TransferProcessStarted",
    "TransferProcessCompleted",
    "TransferProcessTerminated",
    "ContractNegotiationFinalized",
    "ContractNegotiationTerminated",
    "TransferProcessProvisioned",
    "SomethingNew",
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)
# Near-misses of what EDC sends reach deeper than random JSON: real keys, some values replaced or dropped.
id_like = st.text(max_size=300) | st.sampled_from(["tp-1", "", " ", "a b", "x" * 201, "\x00"])


def mutated(base: dict[str, Any], extra_values: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    keys = sorted(base)
    return st.builds(
        lambda changes, dropped: {k: v for k, v in {**base, **changes}.items() if k not in dropped},
        st.dictionaries(st.sampled_from([*keys, "extra"]), extra_values | id_like, max_size=3),
        st.sets(st.sampled_from(keys), max_size=2),
    )


def events_bodies() -> st.SearchStrategy[Any]:
    agreement = {
        "id": "a-1",
        "assetId": "carla",
        "consumerId": "did:web:c",
        "providerId": "did:web:p",
        "contractSigningDate": 1764063000,
    }
    negotiation = {"contractNegotiationId": "cn-1", "counterPartyId": "did:web:c", "contractAgreement": agreement}
    payloads = (
        mutated(transfer_payload())
        | mutated(negotiation)
        | st.builds(lambda a: {**negotiation, "contractAgreement": a}, mutated(agreement))
    )
    return st.builds(
        lambda edc_type, payload, event_id, at: {**callback(edc_type, payload, event_id), "at": at},
        st.sampled_from(EDC_TYPES) | st.text(max_size=30),
        payloads,
        st.uuids().map(str) | id_like,
        st.integers(min_value=-10, max_value=2**64) | st.sampled_from([1764063000123]),
    )


BODIES = {
    "/edc/provisioner": mutated(control_plane()) | mutated(control_plane(None)) | json_values,
    "/edc/dataplane/provision": mutated(data_plane()) | mutated(data_plane("deprovision")) | json_values,
    "/edc/events": events_bodies() | mutated(callback("TransferProcessStarted", transfer_payload())) | json_values,
}


@pytest.fixture(scope="module")
async def client(stack: Any) -> AsyncIterator[httpx.AsyncClient]:
    import nats

    database = f"t_{uuid.uuid4().hex[:12]}"
    nc = await nats.connect(stack.nats)
    try:
        await nc.jetstream().stream_info("WF")
    except NotFoundError:
        await ensure_streams(nc.jetstream())
    await nc.close()
    service = IngressService(
        # No rate limit: hypothesis sends hundreds of requests as one connector.
        EdcSettings(_env_file=None, edc_body_limit_bytes=64 * 1024, edc_rate_limit_per_second=0),  # type: ignore[call-arg]
        registry(),
        nats_url=stack.nats_for("edc_ingress"),
        mongo_url=stack.mongo,
        mongo_database=database,
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        yield http
    mongo = MongoStateStore.connect(stack.mongo, database)
    await mongo.client.drop_database(database)
    await mongo.close()
    await service.stop()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        accepted = response.json()["accepted"]
        assert accepted and all(uuid.UUID(item["id"]) for item in accepted)
        assert all(item["type"].startswith("edc.") for item in accepted)
    else:
        assert response.status_code in (400, 413, 415, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code
        assert problem["errors"] and all(error["field"] for error in problem["errors"])


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("path", sorted(BODIES))
@PROPERTY
@given(data=st.data())
async def test_any_json_at_any_route_is_never_a_server_error(
    client: httpx.AsyncClient, path: str, data: st.DataObject
) -> None:
    body = data.draw(BODIES[path], label="body")
    check(await client.post(path, json=body, headers=HEADERS))


@pytest.mark.parametrize("path", sorted(BODIES))
@PROPERTY
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
async def test_any_bytes_at_any_route_is_never_a_server_error(client: httpx.AsyncClient, path: str, raw: bytes) -> None:
    check(await client.post(path, content=raw, headers={**HEADERS, "content-type": "application/json"}))
