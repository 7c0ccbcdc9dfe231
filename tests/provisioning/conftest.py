"""A provider's whole provisioning side on the session's servers: a simulated connector, the real ingress, and
the handlers of every group with the EDC client pointed at the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator import shapes
from edc_simulator.connector import SimulatedConnector
from edc_simulator.ledger import Transfer
from edc_simulator.versions import version
from gxwf.definitions import load_assets
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.provisioning import ProvisionDocument
from schemas.tenancy import tenant_id
from tests.backbone.conftest import endpoints, eventually, js, nc, settings, store
from tests.edc_fixtures import KEY, registry_for

if TYPE_CHECKING:
    from devstack import StackEndpoints

__all__ = ["endpoints", "js", "nc", "settings", "store"]

ASSETS = Path(__file__).parents[2] / "deploy" / "assets"
CONSUMER = "did:web:consumer.example"
# What the default connector's consumer owns its runs, inputs and results under.
TENANT = tenant_id("default", CONSUMER)


@dataclass
class Provider:
    """What a test drives: the connector, the ingress (HTTP), the handlers, and the stored state."""

    sim: SimulatedConnector
    ingress: IngressService
    http: httpx.AsyncClient
    handlers: HandlerService
    store: MongoStateStore
    catalogue: MongoAssetCatalogue
    settings: Settings

    async def access(self, tp: str, key: str | None = KEY) -> httpx.Response:
        return await self.http.get(f"/access/{tp}", headers={"x-api-key": key} if key else {})

    async def begin(self, asset_id: str = "shell-count", consumer_id: str = CONSUMER) -> Transfer:
        """What a provider connector sends first: the finalized negotiation, then the provision request."""
        transfer = self.sim.ledger.new_transfer(asset_id, consumer_id)
        await self.sim.send_event(shapes.negotiation_event(self.sim.version, transfer.agreement))
        transfer.state = "PROVISIONING"
        response = await self.sim.send_provisioner_request(transfer, "provision")
        assert response.status_code == 200, response.text
        return transfer

    async def deprovision(self, transfer: Transfer) -> None:
        transfer.state = "DEPROVISIONING"
        response = await self.sim.send_provisioner_request(transfer, "deprovision")
        assert response.status_code == 200, response.text

    async def transfer_event(self, transfer: Transfer, edc_type: str) -> None:
        event = shapes.transfer_event(self.sim.version, transfer, edc_type, reason="simulated")
        response = await self.sim.send_event(event)
        assert response.status_code == 200, response.text

    async def reaches(self, tp: str, state: str, timeout: float = 15.0) -> ProvisionDocument:
        async def check() -> ProvisionDocument | None:
            doc = await self.store.get(ProvisionDocument, tp)
            return doc if doc is not None and doc.state == state else None

        found: ProvisionDocument = await eventually(check, timeout=timeout)
        return found

    def callbacks(self, tp: str, action: str) -> list[object]:
        return [c for c in self.sim.ledger.callbacks if c.transfer_process_id == tp and c.action == action]


StartProvider = Callable[..., Awaitable[Provider]]


@pytest.fixture
async def start_provider(
    stack: StackEndpoints,
    js: JetStreamContext,
    settings: Settings,
    endpoints: Endpoints,
    store: MongoStateStore,
) -> AsyncIterator[StartProvider]:
    started: list[Callable[[], Awaitable[None]]] = []

    async def start(edc_version: str = "0.15", **overrides: object) -> Provider:
        sim = SimulatedConnector(version(edc_version), ingress_url="http://127.0.0.1:9", api_key=KEY)
        await sim.start()
        started.append(sim.stop)
        registry = registry_for(sim)
        ingress = IngressService(
            EdcSettings(_env_file=None),  # type: ignore[call-arg]
            registry,
            nats_url=stack.nats_for("edc_ingress"),
            mongo_url=stack.mongo,
            mongo_database=settings.mongo_database,
            host="127.0.0.1",
            port=0,
        )
        sim.ingress_url = await ingress.start()
        started.append(ingress.stop)
        configured = settings.model_copy(update={"deploy_timeout_seconds": 5.0, **overrides})
        handlers = HandlerService(configured, endpoints, connectors=registry, edc_backoff=(0.05, 0.1))
        await handlers.start()
        started.append(handlers.stop)
        catalogue = MongoAssetCatalogue(store.db)
        # Every shipped definition, the GPU one too: it serves `carla-minimal` before its CPU stand-in.
        for definition in [*load_assets(ASSETS), *load_assets(ASSETS / "gpu")]:
            await catalogue.apply(definition)
        http = httpx.AsyncClient(base_url=sim.ingress_url, timeout=10)
        started.append(http.aclose)
        return Provider(sim, ingress, http, handlers, store, catalogue, configured)

    yield start
    for stop in reversed(started):
        await stop()
