"""Attack: connector B (its own valid key) reaches for connector A's transfers and consumers.

Two simulated connectors call one real ingress, with every handler and the WorkflowApi behind it. B may not
deprovision, terminate or read the access of A's transfer (404, as for a transfer nobody knows; A's transfer
untouched), and a consumer id both connectors name is two tenants: neither token sees the other's runs, inputs
or results. A provision request naming another asset than its agreement's is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator import shapes
from edc_simulator.connector import SimulatedConnector
from edc_simulator.ledger import Transfer
from edc_simulator.versions import version
from events import subjects as s
from gxwf.definitions import load_assets
from gxwf.demo_consumer import consumer_access
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.provisioning import ProvisionDocument
from tests.backbone.conftest import eventually, stream_events
from tests.edc_fixtures import KEY, OTHER_KEY
from tests.provisioning import conftest as provisioning
from tests.workflow_api.conftest import api_service

endpoints, js, nc, settings, store = (
    provisioning.endpoints,
    provisioning.js,
    provisioning.nc,
    provisioning.settings,
    provisioning.store,
)

SAME_CONSUMER = "did:web:same.example"


@dataclass
class Side:
    name: str
    sim: SimulatedConnector
    http: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {self.sim.api_key_header: self.sim.api_key}

    async def provisioner(self, transfer: Transfer, action: str, *, asset: str | None = None) -> httpx.Response:
        body = shapes.provision_request(self.sim.version, transfer, self.sim.callback_address, action)
        if asset is not None:
            body["assetId"] = asset
        return await self.http.post("/edc/provisioner", json=body, headers=self.auth)

    async def begin(self, consumer: str = SAME_CONSUMER) -> Transfer:
        transfer = self.sim.ledger.new_transfer("shell-count", consumer)
        await self.sim.send_event(shapes.negotiation_event(self.sim.version, transfer.agreement))
        response = await self.provisioner(transfer, "provision")
        assert response.status_code == 200, response.text
        return transfer


@dataclass
class Two:
    a: Side
    b: Side
    store: MongoStateStore
    api_url: str

    async def reaches(self, tp: str, *states: str) -> ProvisionDocument:
        async def check() -> ProvisionDocument | None:
            doc = await self.store.get(ProvisionDocument, tp)
            return doc if doc is not None and doc.state in states else None

        found: ProvisionDocument = await eventually(check, timeout=20)
        return found


@pytest.fixture
async def two(
    stack: StackEndpoints,
    js: JetStreamContext,
    settings: Settings,
    endpoints: Endpoints,
    store: MongoStateStore,
) -> AsyncIterator[Two]:
    stops: list[Callable[[], Awaitable[None]]] = []
    sims = (
        SimulatedConnector(version("0.15"), ingress_url="http://127.0.0.1:9", api_key=KEY),
        SimulatedConnector(
            version("0.15"), ingress_url="http://127.0.0.1:9", api_key=OTHER_KEY, api_key_header="X-Other-Key"
        ),
    )
    for sim in sims:
        await sim.start()
        stops.append(sim.stop)
    registry = ConnectorRegistry(
        connectors=tuple(
            EdcConnector(
                name=name,
                api_key_header=sim.api_key_header,
                api_key=SecretStr(sim.api_key),
                management_url=sim.management_url,
                management_api_version=sim.version.management_path,
                management_api_key=SecretStr(sim.management_key),
            )
            for name, sim in zip(("default", "other"), sims, strict=True)
        )
    )
    ingress = IngressService(
        EdcSettings(_env_file=None),  # type: ignore[call-arg]
        registry,
        nats_url=stack.nats,
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await ingress.start()
    stops.append(ingress.stop)
    for sim in sims:
        sim.ingress_url = url
    handlers = HandlerService(settings, endpoints, connectors=registry, edc_backoff=(0.05, 0.1))
    await handlers.start()
    stops.append(handlers.stop)
    api = api_service(settings, endpoints, state_dir=settings.state_dir / "api")
    api_url = await api.start()
    stops.append(api.stop)
    catalogue = MongoAssetCatalogue(store.db)
    for definition in [*load_assets(provisioning.ASSETS), *load_assets(provisioning.ASSETS / "gpu")]:
        await catalogue.apply(definition)
    http = httpx.AsyncClient(base_url=url, timeout=10)
    stops.append(http.aclose)
    yield Two(Side("default", sims[0], http), Side("other", sims[1], http), store, api_url)
    for stop in reversed(stops):
        await stop()


def _same_answer(theirs: httpx.Response, unknown: httpx.Response, tp: str) -> None:
    assert theirs.status_code == unknown.status_code == 404, theirs.text
    assert theirs.headers["content-type"] == "application/problem+json"
    # The same problem but for the transfer named (and the request path, `instance`).
    expected = {**unknown.json(), "detail": unknown.json()["detail"].replace("no-such-transfer", tp)}
    expected.pop("instance", None)
    assert {k: v for k, v in theirs.json().items() if k != "instance"} == expected


async def test_another_connectors_transfer_is_not_found(two: Two, js: JetStreamContext) -> None:
    transfer = await two.a.begin()
    granted = await two.reaches(transfer.id, "granted")
    unknown = await two.b.http.get("/access/no-such-transfer", headers=two.b.auth)

    _same_answer(await two.b.http.get(f"/access/{transfer.id}", headers=two.b.auth), unknown, transfer.id)
    _same_answer(await two.b.provisioner(transfer, "deprovision"), unknown, transfer.id)
    for kind in ("TransferProcessTerminated", "TransferProcessCompleted"):
        event = shapes.transfer_event(two.b.sim.version, transfer, kind, reason="taken over")
        _same_answer(await two.b.sim.send_event(event), unknown, transfer.id)

    # A's transfer is untouched: same state and history, its access still answered, nothing was published.
    assert await two.store.get(ProvisionDocument, transfer.id) == granted
    mine = await two.a.http.get(f"/access/{transfer.id}", headers=two.a.auth)
    assert mine.status_code == 200, mine.text
    for subject in (s.EDC_DEPROVISION_REQUESTED, s.EDC_TRANSFER_TERMINATED, s.EDC_TRANSFER_COMPLETED):
        assert await stream_events(js, subject, wait=False) == [], subject
    assert two.a.sim.ledger.callbacks and all(c.action == "provision" for c in two.a.sim.ledger.callbacks)


async def test_two_connectors_naming_one_consumer_id_are_two_tenants(two: Two) -> None:
    mine, theirs = await two.a.begin(), await two.b.begin()
    doc_a = await two.reaches(mine.id, "granted")
    doc_b = await two.reaches(theirs.id, "granted")
    access_a, access_b = consumer_access(two.a.sim, mine.id), consumer_access(two.b.sim, theirs.id)
    assert access_a is not None and access_b is not None and access_a[1] != access_b[1]

    async with (
        httpx.AsyncClient(base_url=two.api_url, headers={"Authorization": f"Bearer {access_a[1]}"}) as a,
        httpx.AsyncClient(base_url=two.api_url, headers={"Authorization": f"Bearer {access_b[1]}"}) as b,
    ):
        uploaded = await a.post("/v1/inputs", params={"name": "text"}, content=b"one\ntwo\n")
        assert uploaded.status_code == 201, uploaded.text
        input_id = uploaded.json()["id"]
        started = await a.post("/v1/runs", json={"asset_id": "shell-count", "inputs": {"text": input_id}})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]

        async def finished() -> bool:
            status = (await a.get(f"/v1/runs/{run_id}")).json()
            return bool(status.get("state") in ("succeeded", "failed") and status.get("results_url"))

        await eventually(finished, timeout=30)
        assert (await a.get(f"/v1/runs/{run_id}/results")).status_code == 200

        # B, naming the same consumer id through its own connector, sees none of it.
        assert (await b.get(f"/v1/inputs/{input_id}")).status_code == 404
        assert (await b.get(f"/v1/runs/{run_id}")).status_code == 404
        assert (await b.get(f"/v1/runs/{run_id}/results")).status_code == 404
        assert (await b.get(f"/v1/runs/{run_id}/logs")).status_code == 404
        listed = await b.get("/v1/runs")
        assert listed.status_code == 200 and run_id not in listed.text
        inputs = await b.get("/v1/inputs")
        assert inputs.status_code in (200, 404, 405) and input_id not in inputs.text
        reuse = await b.post("/v1/runs", json={"asset_id": "shell-count", "inputs": {"text": input_id}})
        assert reuse.status_code in (404, 422) and reuse.headers["content-type"] == "application/problem+json"

    # Two tenants, each shown with the consumer id its connector uses.
    assert doc_a.consumer_id != doc_b.consumer_id
    assert doc_a.edc_consumer_id == doc_b.edc_consumer_id == SAME_CONSUMER


async def test_a_provision_naming_another_asset_than_its_agreement_is_refused(two: Two, js: JetStreamContext) -> None:
    transfer = two.a.sim.ledger.new_transfer("shell-count", SAME_CONSUMER)
    response = await two.a.provisioner(transfer, "provision", asset="carla-minimal")
    assert response.status_code == 200, response.text
    doc = await two.reaches(transfer.id, "failed", "granted")
    assert doc.state == "failed" and doc.failed_step == "asset", (doc.state, doc.reason)
    assert "'carla-minimal'" in (doc.reason or "") and "'shell-count'" in (doc.reason or "")
    assert await stream_events(js, s.DEPLOYMENT_REQUESTED, wait=False) == []
