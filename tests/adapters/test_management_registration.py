"""A connector simulator's management API registered in the state directory: the EDC client of a system without
a configured management URL asks it, its key goes only below that URL, and a configured URL always wins."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.edc_client import HttpEdcClient
from adapters.management_registration import FILE, RegisteredManagement, register, unregister
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_store import MongoStateStore
from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import version
from ports.edc import AccessAddress, EdcCallbackRefused, EdcNotConfigured, EdcNotFound, ProvisionTarget
from schemas.connectors import ConnectorRegistry, EdcConnector, ManagementApi

INBOUND = SecretStr("inbound-key-0123456789")


@pytest.fixture
async def calls(store: MongoStateStore) -> MongoEdcCallLog:
    log = MongoEdcCallLog(store.db)
    await log.ensure_indexes()
    return log


@pytest.fixture
async def sims() -> AsyncIterator[tuple[SimulatedConnector, SimulatedConnector]]:
    """An EDC 0.5 simulator (management API v2, `edc:` prefixes), and a second one that accepts the same
    management key: if that key ever reached it, it would count the callback as authorized."""
    first = SimulatedConnector(version("0.5"), ingress_url="http://127.0.0.1:1", api_key="unused")
    await first.start()
    second = SimulatedConnector(
        version("0.10"), ingress_url="http://127.0.0.1:1", api_key="unused", management_key=first.management_key
    )
    await second.start()
    yield first, second
    await first.stop()
    await second.stop()


def api_of(sim: SimulatedConnector) -> ManagementApi:
    return ManagementApi(
        url=sim.management_url,
        api_version=sim.version.management_path,
        key=SecretStr(sim.management_key),
        registered=True,
    )


def target(sim: SimulatedConnector, transfer_id: str) -> ProvisionTarget:
    return ProvisionTarget(
        connector="default",
        generation="control-plane-http",
        transfer_process_id=transfer_id,
        callback_address=sim.callback_address,
        asset_id="carla-minimal",
        resource_definition_id="rd-1",
    )


async def test_the_registered_simulator_is_asked_fresh_and_its_key_goes_nowhere_else(
    sims: tuple[SimulatedConnector, SimulatedConnector], calls: MongoEdcCallLog, tmp_path: Path
) -> None:
    first, second = sims
    registry = ConnectorRegistry(connectors=(EdcConnector(name="default", api_key=INBOUND),))
    edc = HttpEdcClient(registry, calls, backoff=[0.0], management_lookup=RegisteredManagement(tmp_path, "default"))
    transfer = first.ledger.new_transfer("carla-minimal", "did:web:consumer.example")
    try:
        with pytest.raises(EdcNotConfigured):
            await edc.transfer_process("default", transfer.id)

        # Registered after the client was built: found on the next lookup, in the version it speaks (v2).
        path = register(tmp_path, api_of(first))
        assert path.stat().st_mode & 0o777 == 0o600
        info = await edc.transfer_process("default", transfer.id)
        assert info.contract_id == transfer.agreement.id
        agreement = await edc.contract_agreement("default", transfer.agreement.id)
        assert agreement.consumer_id == "did:web:consumer.example"
        assert (await calls.calls())[0].url.startswith(f"{first.management_url}/v2/transferprocesses/")

        access = AccessAddress(base_url="http://127.0.0.1:8490", auth_code="token-for-the-consumer")
        await edc.provisioned(target(first, transfer.id), access, resource_name="gxwf-1")
        assert first.ledger.callbacks[-1].authorized
        # A callback address elsewhere is not called at all: it is not under the registered API's origin.
        elsewhere = second.ledger.new_transfer("carla-minimal", "did:web:consumer.example")
        with pytest.raises(EdcCallbackRefused):
            await edc.provisioned(target(second, elsewhere.id), access, resource_name="gxwf-2")
        assert second.ledger.callbacks == []
        assert (await calls.calls())[-1].outcome == "refused"

        unregister(tmp_path, api_of(first))
        assert not path.exists()
        with pytest.raises(EdcNotConfigured):
            await edc.transfer_process("default", transfer.id)
    finally:
        await edc.close()


async def test_a_configured_management_url_always_wins(
    sims: tuple[SimulatedConnector, SimulatedConnector], calls: MongoEdcCallLog, tmp_path: Path
) -> None:
    first, second = sims
    configured = EdcConnector(
        name="default",
        api_key=INBOUND,
        management_url=second.management_url,
        management_api_version="v3",
        management_api_key=SecretStr(second.management_key),
    )
    register(tmp_path, api_of(first))
    edc = HttpEdcClient(
        ConnectorRegistry(connectors=(configured,)),
        calls,
        backoff=[0.0],
        management_lookup=RegisteredManagement(tmp_path, "default"),
    )
    transfer = first.ledger.new_transfer("carla-minimal", "did:web:consumer.example")
    try:
        with pytest.raises(EdcNotFound):
            await edc.transfer_process("default", transfer.id)
    finally:
        await edc.close()
    assert [c.url.split("/v")[0] for c in await calls.calls()] == [second.management_url]


def test_only_another_connector_the_demo_fallback_and_private_live_files(tmp_path: Path) -> None:
    demo = ManagementApi(url="http://127.0.0.1:9/api/management", api_version="v3", registered=True)
    new = ManagementApi(url="http://127.0.0.1:10/api/management", api_version="v4", registered=True)
    lookup = RegisteredManagement(tmp_path, "default", fallback=demo)
    default = EdcConnector(name="default", api_key=INBOUND)
    other = EdcConnector(name="other", api_key=SecretStr("other-key-0123456789"))
    assert lookup(default) == demo and lookup(other) is None
    register(tmp_path, new)
    assert lookup(default) == new and lookup(other) is None

    # A later simulator's registration is not removed by an earlier one leaving.
    unregister(tmp_path, demo)
    assert lookup(default) == new

    path = tmp_path / FILE
    path.chmod(0o644)
    assert lookup(default) == demo  # readable by others: not trusted
    path.chmod(0o600)
    link = tmp_path / "elsewhere"
    link.mkdir()
    path.rename(link / FILE)
    path.symlink_to(link / FILE)
    assert lookup(default) == demo  # a link could point anywhere
    path.unlink()
    (link / FILE).rename(path)
    assert lookup(default) == new
    record = json.loads(path.read_text())
    dead = subprocess.Popen(["true"])
    dead.wait()
    path.write_text(json.dumps({**record, "pid": dead.pid}))
    assert lookup(default) == demo  # its simulator was killed before it could remove it
    path.write_text("{not json")
    assert lookup(default) == demo
