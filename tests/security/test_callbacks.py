"""Attack: a connector's key holder names its own callbackAddress to draw the management key or a consumer's token.

The real ingress and handlers run against a simulated connector (tests/provisioning); an "attacker" listens on
127.0.0.1. Whatever the request names, the attacker must receive nothing, and the refusal must be on record:
a refused call in the EDC call log, the provisioning failed with its reason, the dashboard timeline showing it.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.callback_policy import CallbackRefused, check_callback, check_callback_address
from adapters.edc_client import HttpEdcClient
from adapters.mongo_queries import MongoOpsQueries
from dashboard.timeline import transfer_timeline
from edc_ingress.settings import ConfigError, EdcSettings, connector_registry
from edc_simulator import shapes
from edc_simulator.ledger import Transfer
from events import subjects as s
from ports.edc import EdcCallbackRefused, ProvisionTarget
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.edc_calls import EdcCall
from schemas.provisioning import ProvisionDocument
from tests.backbone.conftest import eventually, stream_events
from tests.provisioning import conftest as provisioning
from tests.provisioning.conftest import CONSUMER, Provider, StartProvider
from tests.security.listener import Listener, attacker

# The provisioning tests' fixtures: a simulated connector, the real ingress and every handler, fresh servers.
endpoints, js, nc, settings, store = (
    provisioning.endpoints,
    provisioning.js,
    provisioning.nc,
    provisioning.settings,
    provisioning.store,
)
start_provider = provisioning.start_provider


async def _send(provider: Provider, transfer: Transfer, callback: str, action: str) -> None:
    """A provisioner request as the connector's key holder crafts it: every field as EDC sends it, but the
    callback address."""
    sim = provider.sim
    body = shapes.provision_request(sim.version, transfer, callback, action)
    if sim.version.provisioner != "data-plane":
        body["type"] = action
    path = "/edc/dataplane/provision" if sim.version.provisioner == "data-plane" else "/edc/provisioner"
    response = await provider.http.post(path, json=body, params={sim.api_key_header: sim.api_key})
    assert response.status_code == 200, response.text


async def _settled(provider: Provider, tp: str, *states: str) -> ProvisionDocument:
    async def check() -> ProvisionDocument | None:
        doc = await provider.store.get(ProvisionDocument, tp)
        return doc if doc is not None and doc.state in states else None

    found: ProvisionDocument = await eventually(check, timeout=20)
    return found


async def _calls(provider: Provider, tp: str) -> list[dict[str, Any]]:
    return await provider.store.db["edc_calls"].find({"transfer_process_id": tp}).to_list(None)


def _nothing_leaked(listener: Listener, provider: Provider) -> None:
    assert listener.received == [], listener.everything()[:500]
    assert provider.sim.management_key.encode() not in listener.everything()


async def test_a_deprovision_of_an_unknown_transfer_calls_nobody(start_provider: StartProvider) -> None:
    provider = await start_provider()
    async with attacker() as listener:
        unknown = provider.sim.ledger.new_transfer("shell-count", CONSUMER)
        await _send(provider, unknown, f"{listener.origin}/x#", "deprovision")
        await _settled(provider, unknown.id, "deprovisioned")
        _nothing_leaked(listener, provider)
        assert await _calls(provider, unknown.id) == []


@pytest.mark.parametrize(
    "trick",
    [
        "{attacker}/x#",
        "{attacker}/api/management/callback",
        # user info naming the connector: the host is still the attacker's
        "http://{sim_host}@{attacker_host}/api/management/callback",
        "http://{sim_host}\\@{attacker_host}/api/management/callback",
    ],
)
async def test_a_provision_with_an_attackers_callback_is_refused_and_recorded(
    start_provider: StartProvider, js: JetStreamContext, trick: str
) -> None:
    provider = await start_provider()
    async with attacker() as listener:
        sim_host = provider.sim.management_url.split("//", 1)[1].split("/", 1)[0]
        callback = trick.format(attacker=listener.origin, attacker_host=f"127.0.0.1:{listener.port}", sim_host=sim_host)
        transfer = provider.sim.ledger.new_transfer("shell-count", CONSUMER)
        await _send(provider, transfer, callback, "provision")
        doc = await _settled(provider, transfer.id, "failed", "granted")
        _nothing_leaked(listener, provider)
        assert doc.state == "failed" and doc.failed_step == "callback", (doc.state, doc.reason)
        assert (doc.reason or "").startswith("provisioned: callback"), doc.reason
        # Refused before anything was built: no WorkflowApi, no token.
        assert doc.deployment_id is None
        assert await stream_events(js, s.DEPLOYMENT_REQUESTED, wait=False) == []
        calls = await _calls(provider, transfer.id)
        refused = [c for c in calls if c["outcome"] == "refused"]
        assert refused and all(c["outcome"] in ("refused", "ok") for c in calls), calls
        assert not [c for c in calls if c["operation"] in ("provisioned", "deprovisioned") and c["outcome"] == "ok"]

        timeline = await transfer_timeline(MongoOpsQueries(provider.store), transfer.id)
        assert timeline is not None
        entries = [e for phase in timeline.phases for e in phase.entries]
        assert any(e.label.startswith("callback refused") and e.status == "failed" for e in entries), entries


async def test_a_data_plane_provision_with_an_attackers_callback_gets_no_token(start_provider: StartProvider) -> None:
    provider = await start_provider("0.18")
    async with attacker() as listener:
        transfer = provider.sim.ledger.new_transfer("shell-count", CONSUMER)
        await _send(provider, transfer, f"{listener.origin}/provisioning#", "provision")
        doc = await _settled(provider, transfer.id, "failed", "granted")
        assert listener.received == [] and b"Bearer" not in listener.everything()
        assert doc.state == "failed" and doc.failed_step == "callback"


async def test_a_deprovision_of_a_known_transfer_to_an_attacker_is_refused_and_the_teardown_goes_on(
    start_provider: StartProvider,
) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    async with attacker() as listener:
        await _send(provider, transfer, f"http://user:pw@127.0.0.1:{listener.port}/x", "deprovision")
        await provider.reaches(transfer.id, "deprovisioned")
        _nothing_leaked(listener, provider)
    calls = await _calls(provider, transfer.id)
    assert [c["operation"] for c in calls if c["outcome"] == "refused"] == ["deprovisioned"]
    # The user info never reaches the record either.
    assert all("pw" not in c["url"] for c in calls)


async def test_the_connectors_own_callback_still_works(start_provider: StartProvider) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    assert len(provider.callbacks(transfer.id, "provision")) == 1


BASE = "http://good.example:8181/api/control"


@pytest.mark.parametrize(
    "url",
    [
        "http://good.example@evil.example/api/control/x",
        "http://good.example:8181@evil.example/api/control/x",
        "http://good.example.evil.example:8181/api/control/x",
        "http://good.example:8182/api/control/x",
        "http://good.example/api/control/x",
        "https://good.example:8181/api/control/x",
        "http://good.example:8181/api/controlx",
        "http://good.example:8181/api/control/../../admin",
        "http://good.example:8181/api/control/%2e%2e/%2e%2e/admin",
        "http://good.example:8181/api/control/x#",
        "http://good.example:8181/api/control/x?y",
        "http://user:pw@good.example:8181/api/control/x",
        "http://evil.example/#@good.example:8181/api/control/x",
        "ftp://good.example:8181/api/control/x",
    ],
)
def test_callback_urls_outside_the_base_are_refused(url: str) -> None:
    with pytest.raises(CallbackRefused):
        _check(url)


def _check(url: str) -> None:
    check_callback_address(url)
    check_callback(url, [BASE])


@pytest.mark.parametrize(
    "url", ["http://good.example:8181/api/control", "http://GOOD.example:8181/api/control/tp-1/provision"]
)
def test_callback_urls_under_the_base_are_allowed(url: str) -> None:
    _check(url)


def test_no_base_refuses_everything() -> None:
    with pytest.raises(CallbackRefused):
        check_callback(f"http://good.example/{uuid.uuid4()}", [])


def test_the_default_connectors_callback_base_comes_from_gxwf_edc_callback_url() -> None:
    settings = EdcSettings(  # type: ignore[call-arg]
        _env_file=None,
        edc_api_key=SecretStr("k" * 20),
        edc_management_url="http://cp.example:8181/api/management",
        edc_callback_url="http://dp.example:8765/provisioning/",
    )
    (connector,) = connector_registry(settings).connectors
    assert connector.callback_urls == ("http://dp.example:8765/provisioning",)


@pytest.mark.parametrize("base", ["http://user@good.example/", "http://good.example/x#", "http://good.example/%2e"])
def test_a_callback_base_with_user_info_fragment_or_escapes_is_a_configuration_error(base: str) -> None:
    settings = EdcSettings(_env_file=None, edc_api_key=SecretStr("k" * 20), edc_callback_url=base)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match=r"^GXWF_EDC_CALLBACK_URL: "):
        connector_registry(settings)


async def test_without_callback_base_or_management_url_nobody_is_called() -> None:
    registry = ConnectorRegistry(connectors=(EdcConnector(name="default", api_key=SecretStr("k" * 20)),))
    edc = HttpEdcClient(registry, _NoLog())
    target = ProvisionTarget("default", "control-plane-http", "tp-1", "http://127.0.0.1:9/callback")
    try:
        assert edc.callback_bases(registry.get("default")) == ()
        with pytest.raises(EdcCallbackRefused, match="no callback base"):
            await edc.deprovisioned(target)
    finally:
        await edc.close()


class _NoLog:
    async def record(self, call: EdcCall) -> None:
        return None

    async def calls(self, **equals: Any) -> list[EdcCall]:
        return []
