"""Bad input gets problem+json naming what is wrong, and leaves nothing on the bus and nothing in the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from tests.backbone.conftest import stream_events
from tests.edc_fixtures import BODY_LIMIT, KEY, OTHER_KEY, RunningIngress
from tests.edc_ingress.test_routes import callback, control_plane, data_plane, transfer_payload

JSON = {"content-type": "application/json", "x-api-key": KEY}


@pytest.fixture
async def untouched(ingress: RunningIngress, js: JetStreamContext, store: MongoStateStore) -> AsyncIterator[None]:
    yield
    assert await stream_events(js, "edc.>") == []
    assert await stream_events(js, "wf.>") == []
    for name in await store.db.list_collection_names():
        assert await store.db[name].count_documents({}) == 0, name


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("urn:gxwf:problem:") and body["title"]
    return body


def fields(body: dict[str, Any]) -> list[str]:
    return [e["field"] for e in body["errors"]]


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("path", ["/edc/provisioner", "/edc/dataplane/provision", "/edc/events"])
async def test_malformed_json(ingress: RunningIngress, path: str) -> None:
    for raw in (b'{"transferProcessId": ', b"\xff\xfe{}", b'{"a": NaN}', b"", b'{"a": "\\ud800"}'):
        body = problem(await ingress.client.post(path, content=raw, headers=JSON), 400)
        assert fields(body) == ["body"], raw
    body = problem(await ingress.client.post(path, content=b"[1, 2]", headers=JSON), 422)
    assert body["detail"] == "body: Input should be a JSON object"


@pytest.mark.usefixtures("untouched")
async def test_missing_required_fields_are_named(ingress: RunningIngress) -> None:
    without = {k: v for k, v in control_plane().items() if k != "callbackAddress"}
    body = problem(await ingress.post("/edc/provisioner", without), 422)
    assert fields(body) == ["callbackAddress"] and body["detail"] == "callbackAddress: Field required"

    body = problem(await ingress.post("/edc/dataplane/provision", {"type": "provision"}), 422)
    assert fields(body) == ["provisionResourceId", "flowId", "callbackAddress"]

    body = problem(await ingress.post("/edc/events", {"id": "e1", "type": "TransferProcessStarted"}), 422)
    assert fields(body) == ["at", "payload"]


@pytest.mark.usefixtures("untouched")
async def test_wrong_types_are_named(ingress: RunningIngress) -> None:
    body = problem(await ingress.post("/edc/provisioner", {**control_plane(), "transferProcessId": 42}), 422)
    assert fields(body) == ["transferProcessId"]
    body = problem(await ingress.post("/edc/provisioner", {**control_plane(), "type": "explode"}), 422)
    assert fields(body) == ["type"]
    body = problem(await ingress.post("/edc/provisioner", {**control_plane(), "callbackAddress": "ftp://x"}), 422)
    assert fields(body) == ["callbackAddress"]
    body = problem(await ingress.post("/edc/dataplane/provision", {**data_plane(), "flowId": "has space"}), 422)
    assert fields(body) == ["flowId"]
    event = callback("TransferProcessStarted", transfer_payload())
    for wrong in ({"at": "yesterday"}, {"at": True}, {"at": -1}, {"payload": [1]}, {"id": None}):
        body = problem(await ingress.post("/edc/events", {**event, **wrong}), 422)
        assert fields(body) == list(wrong), wrong


@pytest.mark.usefixtures("untouched")
async def test_a_body_over_the_limit_is_413(ingress: RunningIngress) -> None:
    big = {**control_plane(), "padding": "x" * BODY_LIMIT}
    body = problem(await ingress.post("/edc/provisioner", big), 413)
    assert "GXWF_EDC_BODY_LIMIT_BYTES" in body["detail"]

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit holds for a streamed (chunked) body too.
        yield b'{"padding": "'
        for _ in range(BODY_LIMIT // 1024 + 1):
            yield b"y" * 1024
        yield b'"}'

    problem(await ingress.client.post("/edc/events", content=chunks(), headers=JSON), 413)


@pytest.mark.usefixtures("untouched")
@pytest.mark.parametrize("path", ["/edc/provisioner", "/edc/dataplane/provision", "/edc/events"])
async def test_a_missing_or_wrong_key_is_401(ingress: RunningIngress, path: str) -> None:
    cases = [
        {},
        {"x-api-key": KEY[:-1]},
        {"x-api-key": KEY + "x"},
        {"x-api-key": OTHER_KEY},  # the other connector's secret in the wrong header
        {"x-other-key": KEY},
    ]
    for headers in cases:
        response = await ingress.client.post(path, json=control_plane(), headers=headers)
        body = problem(response, 401)
        assert "x-api-key" in body["detail"] and KEY not in response.text
        assert response.headers["www-authenticate"].startswith("ApiKey")


@pytest.mark.usefixtures("untouched")
async def test_a_non_json_content_type_is_415(ingress: RunningIngress) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml", None):
        headers = {"x-api-key": KEY} | ({"content-type": content_type} if content_type else {})
        response = await ingress.client.post("/edc/provisioner", content=b'{"a": 1}', headers=headers)
        assert fields(problem(response, 415)) == ["content-type"]
    # application/json with a charset, and +json suffixes, are JSON.
    response = await ingress.client.post(
        "/edc/events", content=b"{}", headers={"x-api-key": KEY, "content-type": "application/cloudevents+json"}
    )
    assert response.status_code == 422


@pytest.mark.usefixtures("untouched")
async def test_unknown_routes_and_methods_are_problems_too(ingress: RunningIngress) -> None:
    problem(await ingress.client.get("/edc/nothing-here"), 404)
    problem(await ingress.client.get("/edc/events"), 405)
