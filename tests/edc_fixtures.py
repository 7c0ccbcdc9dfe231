"""Fixtures shared by the EDC tests (ingress, client, simulator): a running ingress on the session's servers.

Import them into a directory's conftest.py; they build on the backbone fixtures (fresh streams, fresh database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from gxwf.settings import Settings
from schemas.connectors import ConnectorRegistry, EdcConnector

if TYPE_CHECKING:
    from devstack import StackEndpoints
    from edc_simulator.connector import SimulatedConnector

KEY = "test-key-0123456789abcdef"
OTHER_KEY = "other-key-0123456789abcdef"
BODY_LIMIT = 8 * 1024


@dataclass
class RunningIngress:
    url: str
    service: IngressService
    client: httpx.AsyncClient

    async def post(
        self, path: str, body: object, *, key: str | None = KEY, header: str = "x-api-key", **kwargs: object
    ) -> httpx.Response:
        headers = {header: key} if key is not None else {}
        return await self.client.post(path, json=body, headers=headers, **kwargs)  # type: ignore[arg-type]


def registry() -> ConnectorRegistry:
    return ConnectorRegistry(
        connectors=(
            # The default connector's stock provisioners send its key in the query; the other sends headers only.
            EdcConnector(name="default", api_key=SecretStr(KEY), api_key_in_query=True),
            EdcConnector(name="other", api_key_header="X-Other-Key", api_key=SecretStr(OTHER_KEY)),
        )
    )


def registry_for(sim: SimulatedConnector) -> ConnectorRegistry:
    """The simulated connector as the deployment knows it: its key (in the query too: the simulator plays stock
    provisioners), and how to reach its management API."""
    return ConnectorRegistry(
        connectors=(
            EdcConnector(
                name="default",
                api_key=SecretStr(KEY),
                api_key_in_query=True,
                management_url=sim.management_url,
                management_api_version=sim.version.management_path,
                management_api_key=SecretStr(sim.management_key),
            ),
        )
    )


@pytest.fixture
async def ingress(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, store: MongoStateStore
) -> AsyncIterator[RunningIngress]:
    service = IngressService(
        # No rate limit: the property tests send hundreds of requests as one connector.
        EdcSettings(_env_file=None, edc_body_limit_bytes=BODY_LIMIT, edc_rate_limit_per_second=0),  # type: ignore[call-arg]
        registry(),
        nats_url=stack.nats_for("edc_ingress"),
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield RunningIngress(url, service, client)
    await service.stop()
