"""The EDC client against a simulated connector of each generation, and its retry policy; every call recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from adapters.edc_client import HttpEdcClient
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_store import MongoStateStore
from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import version
from ports.edc import AccessAddress, EdcError, EdcNotFound, ProvisionTarget
from schemas.connectors import ConnectorRegistry, EdcConnector

CONSUMER = "did:web:consumer.example"
ACCESS = AccessAddress(base_url="http://workflow-api.gxwf-c1.svc:8080", auth_code="token-for-the-consumer")


@pytest.fixture
async def calls(store: MongoStateStore) -> MongoEdcCallLog:
    log = MongoEdcCallLog(store.db)
    await log.ensure_indexes()
    return log


@pytest.fixture(params=["0.5", "0.15", "0.18"])
async def simulator(request: pytest.FixtureRequest) -> AsyncIterator[SimulatedConnector]:
    connector = SimulatedConnector(version(request.param), ingress_url="http://127.0.0.1:1", api_key="unused")
    await connector.start()
    yield connector
    await connector.stop()


def registry_for(sim: SimulatedConnector, *, key: str | None = None) -> ConnectorRegistry:
    return ConnectorRegistry(
        connectors=(
            EdcConnector(
                name="provider",
                api_key=SecretStr("inbound-key-0123456789"),
                management_url=sim.management_url,
                management_api_version=sim.version.management_path,
                management_api_key=SecretStr(key or sim.management_key),
            ),
        )
    )


@pytest.fixture
async def client(simulator: SimulatedConnector, calls: MongoEdcCallLog) -> AsyncIterator[HttpEdcClient]:
    edc = HttpEdcClient(registry_for(simulator), calls, backoff=[0.0])
    yield edc
    await edc.close()


async def test_reads_the_consumer_and_asset_of_a_transfer(
    client: HttpEdcClient, simulator: SimulatedConnector, calls: MongoEdcCallLog
) -> None:
    transfer = simulator.ledger.new_transfer("carla-minimal", CONSUMER)
    info = await client.transfer_process("provider", transfer.id)
    assert (info.id, info.asset_id, info.contract_id, info.type) == (
        transfer.id,
        "carla-minimal",
        transfer.agreement.id,
        "PROVIDER",
    )
    assert info.contract_id is not None
    agreement = await client.contract_agreement("provider", info.contract_id)
    assert agreement.consumer_id == CONSUMER and agreement.asset_id == "carla-minimal"
    assert agreement.signed_at == datetime.fromtimestamp(transfer.agreement.signed_at, UTC)

    recorded = await calls.calls()
    assert [(c.operation, c.outcome, c.status, c.final) for c in recorded] == [
        ("transfer_process", "ok", 200, True),
        ("contract_agreement", "ok", 200, True),
    ]
    assert (
        recorded[0].url
        == f"{simulator.management_url}/{simulator.version.management_path}/transferprocesses/{transfer.id}"
    )


async def test_provisioned_and_deprovisioned_callbacks_in_the_connectors_generation(
    client: HttpEdcClient, simulator: SimulatedConnector, calls: MongoEdcCallLog
) -> None:
    transfer = simulator.ledger.new_transfer("carla-minimal", CONSUMER)
    generation = "data-plane-provision-http" if simulator.version.provisioner == "data-plane" else "control-plane-http"
    target = ProvisionTarget(
        connector="provider",
        generation=generation,
        transfer_process_id=transfer.id,
        callback_address=simulator.callback_address,
        asset_id=transfer.asset_id,
        resource_definition_id=transfer.resource_definition_id,
        provision_resource_id=transfer.provision_resource_id,
        flow_id=transfer.id,
    )
    await client.provisioned(target, ACCESS, resource_name=f"gxwf-{transfer.id}")
    await client.deprovisioned(target)

    provisioned, deprovisioned = simulator.ledger.callbacks
    assert provisioned.authorized and deprovisioned.authorized
    assert (provisioned.action, deprovisioned.action) == ("provision", "deprovision")
    properties = {
        "type": "HttpData",
        "baseUrl": ACCESS.base_url,
        "authKey": "Authorization",
        "authCode": "token-for-the-consumer",
    }
    if simulator.version.provisioner == "data-plane":
        assert provisioned.resource_id == transfer.provision_resource_id
        assert provisioned.body == {"dataAddress": {"properties": properties}}
        assert deprovisioned.body is None
    else:
        assert provisioned.body["resourceName"] == f"gxwf-{transfer.id}"
        assert provisioned.body["resourceDefinitionId"] == transfer.resource_definition_id
        assert provisioned.body["contentDataAddress"] == {"properties": properties}
        assert deprovisioned.body["provisionedResourceId"] == transfer.resource_definition_id
        assert deprovisioned.body["error"] is False
    assert simulator.ledger.transfers[transfer.id].state == "DEPROVISIONED"

    # The record shows what was called and how it ended, never the consumer's token.
    recorded = await calls.calls(transfer_process_id=transfer.id)
    assert [(c.operation, c.outcome) for c in recorded] == [("provisioned", "ok"), ("deprovisioned", "ok")]
    assert all("token-for-the-consumer" not in c.model_dump_json() for c in recorded)


async def test_4xx_is_not_retried(simulator: SimulatedConnector, calls: MongoEdcCallLog) -> None:
    edc = HttpEdcClient(registry_for(simulator, key="wrong-management-key"), calls, backoff=[0.0])
    transfer = simulator.ledger.new_transfer("carla-minimal", CONSUMER)
    with pytest.raises(EdcError) as refused:
        await edc.transfer_process("provider", transfer.id)
    assert refused.value.status == 401 and not refused.value.retryable
    edc = HttpEdcClient(registry_for(simulator), calls, backoff=[0.0])
    with pytest.raises(EdcNotFound):
        await edc.transfer_process("provider", "no-such-transfer")
    await edc.close()
    recorded = await calls.calls()
    assert [(c.outcome, c.status, c.attempt, c.final) for c in recorded] == [
        ("client_error", 401, 1, True),
        ("client_error", 404, 1, True),
    ]


# -- retry policy: an httpx MockTransport stands in for a flaky connector ------------------------------------


def flaky(answers: list[int | type[Exception]]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, int):
            return httpx.Response(answer, json={"@id": "tp-1", "state": "STARTED"})
        raise answer("simulated", request=request)

    return httpx.MockTransport(handle), seen


def mocked_registry() -> ConnectorRegistry:
    return ConnectorRegistry(
        connectors=(
            EdcConnector(
                name="provider",
                api_key=SecretStr("inbound-key-0123456789"),
                management_url="http://provider.example:8181/api/management",
                management_api_version="v4",
                management_api_key_header="X-Api-Key",
                management_api_key=SecretStr("management-secret"),
            ),
        )
    )


def recording_sleep() -> tuple[Callable[[float], object], list[float]]:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    return sleep, delays


async def test_5xx_and_network_errors_are_retried_with_backoff(calls: MongoEdcCallLog) -> None:
    transport, seen = flaky([503, httpx.ConnectError, 502, 200])
    sleep, delays = recording_sleep()
    edc = HttpEdcClient(mocked_registry(), calls, transport=transport, backoff=[0.1, 0.5, 2.0], sleep=sleep)  # type: ignore[arg-type]
    info = await edc.transfer_process("provider", "tp-1")
    assert info.state == "STARTED"
    assert delays == [0.1, 0.5, 2.0]
    assert str(seen[0].url) == "http://provider.example:8181/api/management/v4/transferprocesses/tp-1"
    assert seen[0].headers["x-api-key"] == "management-secret"
    recorded = await calls.calls()
    assert [(c.attempt, c.outcome, c.final) for c in recorded] == [
        (1, "server_error", False),
        (2, "network_error", False),
        (3, "server_error", False),
        (4, "ok", True),
    ]


async def test_gives_up_after_the_last_attempt(calls: MongoEdcCallLog) -> None:
    transport, seen = flaky([500])
    sleep, delays = recording_sleep()
    edc = HttpEdcClient(mocked_registry(), calls, transport=transport, attempts=3, backoff=[1.0], sleep=sleep)  # type: ignore[arg-type]
    with pytest.raises(EdcError) as failed:
        await edc.transfer_process("provider", "tp-1")
    assert failed.value.retryable and failed.value.status == 500
    assert len(seen) == 3 and delays == [1.0, 1.0]
    assert [c.final for c in await calls.calls()] == [False, False, True]


async def test_a_4xx_after_a_5xx_stops_at_once(calls: MongoEdcCallLog) -> None:
    transport, seen = flaky([503, 409, 200])
    sleep, _ = recording_sleep()
    edc = HttpEdcClient(mocked_registry(), calls, transport=transport, sleep=sleep)  # type: ignore[arg-type]
    with pytest.raises(EdcError) as failed:
        await edc.transfer_process("provider", "tp-1")
    assert failed.value.status == 409 and len(seen) == 2


async def test_no_management_url_is_a_clear_error(calls: MongoEdcCallLog) -> None:
    registry = ConnectorRegistry(connectors=(EdcConnector(name="bare", api_key=SecretStr("inbound-key-0123456789")),))
    edc = HttpEdcClient(registry, calls)
    with pytest.raises(EdcError, match="connector 'bare' has no management_url configured"):
        await edc.transfer_process("bare", "tp-1")
    with pytest.raises(EdcError, match="no EDC connector named 'ghost'"):
        await edc.transfer_process("ghost", "tp-1")
    await edc.close()
