"""Whatever JSON a control plane throws at any Data Plane Signaling route: an answer or a 4xx problem, never a
5xx."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from nats.js.errors import NotFoundError
from pydantic import SecretStr

from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from events.streams import ensure_streams
from schemas.connectors import ConnectorRegistry, EdcConnector
from tests.edc_fixtures import KEY
from tests.edc_ingress.dps_messages import SIGNALING, start_018, start_main, start_spec
from tests.edc_ingress.test_properties import PROPERTY, id_like, json_values, mutated

HEADERS = {"x-api-key": KEY}
START = mutated(start_018("tp-1")) | mutated(start_main("tp-2")) | mutated(start_spec("tp-3")) | json_values
TRANSITION = (
    st.fixed_dictionaries({}, optional={"reason": json_values | id_like, "messageId": json_values | id_like})
    | json_values
)
BODIES: dict[str, st.SearchStrategy[Any]] = {
    "/dataflows/start": START,
    "/dataflows/prepare": mutated({"processId": "tp-4", "messageId": "m"}) | json_values,
    **{
        f"/dataflows/{{id}}/{kind}": TRANSITION
        for kind in ("started", "suspend", "resume", "terminate", "completed", "complete")
    },
}
# Known flows (started by the hypothesis bodies themselves), unknown ones and odd ids.
PROCESS_IDS = st.sampled_from(["tp-1", "tp-2", "tp-3", "tp-4", "nobody"]) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#%"), min_size=1, max_size=250
).filter(lambda i: i.strip(".") != "")  # . and .. are dot segments the client resolves away


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
        EdcSettings(_env_file=None, edc_body_limit_bytes=64 * 1024, edc_rate_limit_per_second=0),  # type: ignore[call-arg]
        ConnectorRegistry(connectors=(EdcConnector(name="default", api_key=SecretStr(KEY), signaling_url=SIGNALING),)),
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
    if response.status_code >= 400:
        assert response.status_code in (400, 404, 409, 413, 415, 422), response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["status"] == response.status_code and problem["errors"]
    else:
        assert response.json()["state"] in ("PREPARED", "STARTING", "STARTED", "SUSPENDED", "COMPLETED", "TERMINATED")


@pytest.mark.parametrize("route", sorted(BODIES))
@PROPERTY
@given(data=st.data())
async def test_any_json_at_any_dps_route_is_never_a_server_error(
    client: httpx.AsyncClient, route: str, data: st.DataObject
) -> None:
    body = data.draw(BODIES[route], label="body")
    path = route.replace("{id}", quote(data.draw(PROCESS_IDS, label="id"), safe=""))
    check(await client.post(path, json=body, headers=HEADERS))
    check(await client.get(path.rsplit("/", 1)[0] if "{id}" in route else "/dataflows/tp-1", headers=HEADERS))


@PROPERTY
@given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode), route=st.sampled_from(sorted(BODIES)))
async def test_any_bytes_at_any_dps_route_is_never_a_server_error(
    client: httpx.AsyncClient, raw: bytes, route: str
) -> None:
    path = route.replace("{id}", "tp-1")
    check(await client.post(path, content=raw, headers={**HEADERS, "content-type": "application/json"}))
