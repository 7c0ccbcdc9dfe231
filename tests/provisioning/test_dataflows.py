"""A Data Plane Signaling control plane (a stand-in recording its callbacks) drives a transfer through the real
ingress, bus, store and handlers: start, the `started` callback with a working token, suspend, resume, terminate."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_queries import MongoOpsQueries
from adapters.mongo_store import MongoStateStore
from dashboard.timeline import transfer_timeline
from devstack import StackEndpoints
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import version
from events import subjects as s
from gxwf.definitions import load_assets
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.dataflows import DataFlowDocument
from schemas.provisioning import DeploymentDocument
from tests.backbone.conftest import eventually, stream_events
from tests.edc_fixtures import KEY
from tests.edc_ingress.dps_messages import start_018, start_main
from tests.provisioning.conftest import ASSETS
from tests.workflow_api.conftest import api_service

HEADERS = {"x-api-key": KEY}


@dataclass
class ControlPlane:
    """Answers every callback (the first `conflicts` with 409, as a control plane not ready yet) and keeps it."""

    conflicts: int = 0
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    port: int = 0

    @property
    def signaling(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/signaling"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(
                    (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length")), 0
                )
                body = json.loads(await reader.readexactly(length)) if length else {}
                path = lines[0].split(" ")[1]
                status = "409 Conflict" if self.conflicts > 0 else "200 OK"
                self.conflicts -= 1
                self.received.append((path, body))
                writer.write(f"HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
                await writer.drain()
        writer.close()

    def callbacks(self, kind: str) -> list[dict[str, Any]]:
        return [body for path, body in self.received if path.endswith(f"/dataflow/{kind}")]


@dataclass
class Site:
    cp: ControlPlane
    http: httpx.AsyncClient
    api: httpx.AsyncClient
    store: MongoStateStore
    settings: Settings

    async def state(self, tp: str) -> str:
        response = await self.http.get(f"/dataflows/{tp}")
        assert response.status_code == 200, response.text
        state: str = response.json()["state"]
        return state

    async def reaches(self, tp: str, state: str) -> None:
        async def check() -> bool:
            return await self.state(tp) == state

        await eventually(check, timeout=20)

    async def runs(self, token: str) -> int:
        return (await self.api.get("/v1/runs", headers={"Authorization": f"Bearer {token}"})).status_code


@pytest.fixture
async def site(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, endpoints: Endpoints, store: MongoStateStore
) -> AsyncIterator[Callable[..., Awaitable[Site]]]:
    stops: list[Callable[[], Awaitable[object]]] = []

    async def start(conflicts: int = 0, management: SimulatedConnector | None = None, **overrides: object) -> Site:
        cp = ControlPlane(conflicts)
        server = await asyncio.start_server(cp.handle, "127.0.0.1", 0)
        cp.port = server.sockets[0].getsockname()[1]
        server_closed = server.wait_closed

        async def close() -> None:
            server.close()
            await server_closed()

        stops.append(close)
        # No management API: the start message alone says which agreement, asset and consumer.
        # With `management`: the agreement is cross-checked at that (simulated) connector's management API.
        extra: dict[str, Any] = {}
        if management is not None:
            await management.start()
            stops.append(management.stop)
            extra = {
                "management_url": management.management_url,
                "management_api_version": management.version.management_path,
                "management_api_key": SecretStr(management.management_key),
            }
        registry = ConnectorRegistry(
            connectors=(EdcConnector(name="default", api_key=SecretStr(KEY), signaling_url=cp.signaling, **extra),)
        )
        ingress = IngressService(
            EdcSettings(_env_file=None),  # type: ignore[call-arg]
            registry,
            nats_url=stack.nats_for("edc_ingress"),
            mongo_url=stack.mongo,
            mongo_database=settings.mongo_database,
            host="127.0.0.1",
            port=0,
        )
        url = await ingress.start()
        stops.append(ingress.stop)
        configured = settings.model_copy(update={"deploy_timeout_seconds": 5.0, **overrides})
        handlers = HandlerService(configured, endpoints, connectors=registry, edc_backoff=(0.05, 0.1))
        await handlers.start()
        stops.append(handlers.stop)
        catalogue = MongoAssetCatalogue(store.db)
        for definition in [*load_assets(ASSETS), *load_assets(ASSETS / "gpu")]:
            await catalogue.apply(definition)
        # The consumer's WorkflowApi, without a principal cache (a replaced token answers 401 at once) and
        # without a grace period for reading after the teardown.
        api = api_service(
            configured, endpoints, workflow_api_auth_cache_seconds=0, workflow_api_revoked_grace_seconds=0
        )
        api_url = await api.start()
        stops.append(api.stop)
        http = httpx.AsyncClient(base_url=url, timeout=10, headers=HEADERS)
        api_http = httpx.AsyncClient(base_url=api_url, timeout=10)
        stops.extend([http.aclose, api_http.aclose])
        return Site(cp, http, api_http, store, configured)

    yield start
    for stop in reversed(stops):
        await stop()


def token_of(address: dict[str, Any]) -> str:
    properties = {p["name"]: p["value"] for p in address["endpointProperties"]}
    assert properties["authType"] == "bearer"
    token: str = properties["authorization"]
    return token


async def test_start_suspend_resume_terminate(
    site: Callable[..., Awaitable[Site]], js: JetStreamContext, store: MongoStateStore
) -> None:
    # The control plane is not ready for the first callback: 409, retried.
    provider = await site(conflicts=1)
    # EDC 0.18 names its signaling API as the callbackAddress; it lies under the configured one.
    message = {**start_018("tp-dps"), "callbackAddress": provider.cp.signaling}
    response = await provider.http.post("/dataflows/start", json=message)
    assert response.status_code == 202 and response.json()["state"] == "STARTING"

    await provider.reaches("tp-dps", "STARTED")

    async def told() -> list[dict[str, Any]]:
        found = provider.cp.callbacks("started")
        return found if len(found) == 2 else []

    started = await eventually(told)  # the 409, then the one accepted
    message = started[-1]
    assert message["dataFlowId"] == "tp-dps" and message["state"] == "STARTED"
    address = message["dataAddress"]
    assert address["@type"] == "DataAddress"
    assert address["endpointType"] == "https://w3id.org/dspace-sig/profile/http-pull"
    assert address["endpoint"] == provider.settings.workflow_api_url
    token = token_of(address)
    assert await provider.runs(token) == 200

    # Suspended: the token opens nothing any more.
    response = await provider.http.post("/dataflows/tp-dps/suspend", json={"reason": "paused by the provider"})
    assert response.status_code == 200 and response.json()["state"] == "SUSPENDED"
    assert await provider.runs(token) == 401
    assert await provider.state("tp-dps") == "SUSPENDED"

    # Resumed: a fresh token in the answer, which works; the old one still does not.
    response = await provider.http.post("/dataflows/tp-dps/resume", json={})
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "STARTED"
    fresh = token_of(response.json()["dataAddress"])
    assert fresh != token and await provider.runs(fresh) == 200 and await provider.runs(token) == 401

    # Once more, without message ids: a second suspend is not mistaken for a re-sent first one.
    assert (await provider.http.post("/dataflows/tp-dps/suspend")).json()["state"] == "SUSPENDED"
    assert await provider.runs(fresh) == 401
    response = await provider.http.post("/dataflows/tp-dps/resume")
    fresh = token_of(response.json()["dataAddress"])
    assert await provider.runs(fresh) == 200

    # Terminated: everything torn down, the state final.
    response = await provider.http.post("/dataflows/tp-dps/terminate", json={"reason": "transfer terminated"})
    assert response.status_code == 200 and response.json()["state"] == "TERMINATED"

    async def deleted() -> bool:
        deployments = await store.find(DeploymentDocument)
        return bool(deployments) and all(d.state == "deleted" for d in deployments)

    await eventually(deleted, timeout=20)
    assert await provider.runs(fresh) == 401
    assert await provider.state("tp-dps") == "TERMINATED"
    assert (await provider.http.post("/dataflows/tp-dps/resume")).status_code == 409
    # Nothing else was called back: the control plane ended the flow itself.
    assert [path.rsplit("/", 1)[1] for path, _ in provider.cp.received] == ["started", "started"]
    assert all(path == "/api/signaling/transfers/tp-dps/dataflow/started" for path, _ in provider.cp.received)

    # The timeline's record: each message as an event with the state it left.
    signalled = [e["data"] for e in await stream_events(js, s.EDC_DATAFLOW_SIGNALLED)]
    assert [(e["message_type"], e["state"]) for e in signalled] == [
        ("start", "STARTING"),
        ("suspend", "SUSPENDED"),
        ("resume", "STARTED"),
        ("suspend", "SUSPENDED"),
        ("resume", "STARTED"),
        ("terminate", "TERMINATED"),
    ]
    flow = await store.get(DataFlowDocument, "tp-dps")
    assert flow is not None
    assert [h.to for h in flow.history] == [
        "STARTING",
        "STARTED",
        "SUSPENDED",
        "STARTED",
        "SUSPENDED",
        "STARTED",
        "TERMINATED",
    ]

    # The operator's timeline shows the data flow's states and the callbacks.
    timeline = await transfer_timeline(MongoOpsQueries(store), "tp-dps")
    assert timeline is not None
    (phase,) = [p for p in timeline.phases if p.key == "dataflow"]
    labels = [e.label for e in phase.entries]
    for label in ("start received, starting", "started", "suspended: the token opens nothing", "terminated"):
        assert label in labels, labels
    assert "control plane told: started" in labels and phase.status == "ok"


async def test_a_failing_deployment_is_called_back_as_errored(
    site: Callable[..., Awaitable[Site]], store: MongoStateStore
) -> None:
    provider = await site()
    # Needs a GPU: this machine's site has none, so the deployment fails.
    response = await provider.http.post("/dataflows/start", json=start_main("tp-gpu", dataset="carla-minimal"))
    assert response.status_code == 202

    await provider.reaches("tp-gpu", "TERMINATED")

    async def errored() -> list[dict[str, Any]]:
        return provider.cp.callbacks("errored")

    (message,) = await eventually(errored)
    assert message["dataFlowId"] == "tp-gpu" and message["state"] == "TERMINATED"
    assert message["error"].startswith("deployment: no site fits")
    assert provider.cp.callbacks("started") == []
    flow = await store.get(DataFlowDocument, "tp-gpu")
    assert flow is not None and (flow.reason or "").startswith("deployment: no site fits")
    timeline = await transfer_timeline(MongoOpsQueries(store), "tp-gpu")
    assert timeline is not None
    (phase,) = [p for p in timeline.phases if p.key == "dataflow"]
    assert phase.status == "failed" and "control plane told: errored" in [e.label for e in phase.entries]


async def test_an_unknown_dataset_is_called_back_as_errored(site: Callable[..., Awaitable[Site]]) -> None:
    provider = await site()
    response = await provider.http.post(
        "/dataflows/start", json={**start_018("tp-x", dataset="no-such-asset"), "callbackAddress": None}
    )
    assert response.status_code == 202
    await provider.reaches("tp-x", "TERMINATED")

    async def errored() -> list[dict[str, Any]]:
        return provider.cp.callbacks("errored")

    (message,) = await eventually(errored)
    assert "unknown EDC asset id 'no-such-asset'" in message["error"]


async def test_completed_tears_down_and_is_final(site: Callable[..., Awaitable[Site]], store: MongoStateStore) -> None:
    provider = await site()
    assert (await provider.http.post("/dataflows/start", json=start_main("tp-done"))).status_code == 202
    await provider.reaches("tp-done", "STARTED")

    async def told() -> list[dict[str, Any]]:
        return provider.cp.callbacks("started")

    token = token_of((await eventually(told))[0]["dataAddress"])
    assert await provider.runs(token) == 200

    # The spec's name for it, without a body.
    response = await provider.http.post("/dataflows/tp-done/complete")
    assert response.status_code == 200 and response.json()["state"] == "COMPLETED"

    async def deleted() -> bool:
        deployments = await store.find(DeploymentDocument)
        return bool(deployments) and all(d.state == "deleted" for d in deployments)

    await eventually(deleted, timeout=20)
    assert await provider.runs(token) == 401
    assert (await provider.http.post("/dataflows/tp-done/terminate")).status_code == 409
    assert await provider.state("tp-done") == "COMPLETED"
    assert [path.rsplit("/", 1)[1] for path, _ in provider.cp.received] == ["started"]


async def test_the_agreement_is_cross_checked_when_a_management_api_is_configured(
    site: Callable[..., Awaitable[Site]], store: MongoStateStore
) -> None:
    sim = SimulatedConnector(version("0.18"), ingress_url="http://127.0.0.1:9", api_key=KEY)
    provider = await site(management=sim)
    transfer = sim.ledger.new_transfer("shell-count", "did:web:consumer.example")
    agreement = transfer.agreement.id

    # The agreement is the consumer's: started.
    matching = {**start_main(transfer.id), "agreementId": agreement}
    assert (await provider.http.post("/dataflows/start", json=matching)).status_code == 202
    await provider.reaches(transfer.id, "STARTED")

    # Another consumer naming it, or an agreement the connector does not know: errored, nothing deployed for them.
    for tp, changes in (
        ("tp-thief", {"agreementId": agreement, "counterPartyId": "did:web:thief.example"}),
        ("tp-unknown", {"agreementId": "agreement-nobody-signed"}),
    ):
        assert (await provider.http.post("/dataflows/start", json={**start_main(tp), **changes})).status_code == 202
        await provider.reaches(tp, "TERMINATED")
        flow = await store.get(DataFlowDocument, tp)
        assert flow is not None and (flow.reason or "").startswith("negotiation:"), flow
    deployments = await store.find(DeploymentDocument)
    assert [d.transfer_process_id for d in deployments] == [transfer.id]
