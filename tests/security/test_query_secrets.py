"""Attack: a connector's secret in a URL's query (where access logs, proxies and browser histories keep it) is
accepted as if it were the header.

The ingress takes a secret from the query only for a connector configured for it (`api_key_in_query`, for stock
provisioners that cannot send headers); any other connector's secret there counts for nothing and nothing is
published.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings, connector_registry
from gxwf.settings import Settings
from tests.backbone.conftest import js, nc, settings, store, stream_events
from tests.edc_fixtures import KEY, OTHER_KEY, RunningIngress, ingress
from tests.edc_ingress.test_routes import control_plane, data_plane

if TYPE_CHECKING:
    from devstack import StackEndpoints

__all__ = ["ingress", "js", "nc", "settings", "store"]

pytestmark = pytest.mark.servers

CONFIGURED_KEY = "configured-key-0123456789abcdef"


@pytest.fixture
async def configured(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, store: MongoStateStore
) -> AsyncIterator[httpx.AsyncClient]:
    """An ingress whose default connector comes from GXWF_EDC_API_KEY alone, as an operator configures it."""
    edc = EdcSettings(_env_file=None, edc_api_key=CONFIGURED_KEY)
    service = IngressService(
        edc,
        connector_registry(edc),
        nats_url=stack.nats,
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield client
    await service.stop()


async def test_a_configured_key_is_not_accepted_in_the_query_by_default(
    configured: httpx.AsyncClient, js: JetStreamContext
) -> None:
    for path, body in (("/edc/provisioner", control_plane()), ("/edc/dataplane/provision", data_plane())):
        refused = await configured.post(path, json=body, params={"x-api-key": CONFIGURED_KEY})
        assert refused.status_code == 401, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    access = await configured.get("/access/tp-1", params={"x-api-key": CONFIGURED_KEY})
    assert access.status_code == 401
    assert await stream_events(js, "edc.>") == []
    # In its header it is the connector's key as ever.
    accepted = await configured.post("/edc/provisioner", json=control_plane(), headers={"x-api-key": CONFIGURED_KEY})
    assert accepted.status_code == 200, accepted.text


async def test_only_a_connector_configured_for_it_is_known_by_a_key_in_the_query(
    ingress: RunningIngress, js: JetStreamContext
) -> None:
    """`default` is configured for its stock provisioners (`api_key_in_query`); `other` sends headers only."""
    refused = await ingress.client.post("/edc/provisioner", json=control_plane(), params={"x-other-key": OTHER_KEY})
    assert refused.status_code == 401, refused.text
    assert (await ingress.client.get("/access/tp-1", params={"x-other-key": OTHER_KEY})).status_code == 401
    assert await stream_events(js, "edc.>") == []
    stock = await ingress.client.post("/edc/dataplane/provision", json=data_plane(), params={"x-api-key": KEY})
    assert stock.status_code == 200, stock.text
    assert [e["data"]["connector"] for e in await stream_events(js, "edc.>")] == ["default"]
