"""Callbacks to a connector with client credentials carry a bearer JWT from its token endpoint (a real issuer on
127.0.0.1); the token is reused until shortly before it expires, and never sent to an unconfigured address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from pydantic import SecretStr

from adapters.edc_client import HttpEdcClient
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_store import MongoStateStore
from edc_simulator.connector import SimulatedConnector
from edc_simulator.oauth2 import OAuth2Issuer
from edc_simulator.versions import version
from ports.edc import AccessAddress, EdcError, ProvisionTarget
from schemas.connectors import ConnectorRegistry, EdcConnector

ACCESS = AccessAddress(base_url="http://workflow-api.gxwf-c1.svc:8080", auth_code="token-for-the-consumer")
CLIENT_ID = "gxwf-data-plane"
AUDIENCE = "urn:connector:provider"


@pytest.fixture
async def calls(store: MongoStateStore) -> MongoEdcCallLog:
    log = MongoEdcCallLog(store.db)
    await log.ensure_indexes()
    return log


@pytest.fixture
async def issuer() -> AsyncIterator[OAuth2Issuer]:
    served = OAuth2Issuer(audience="urn:unused", algorithm="EdDSA")
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatedConnector]:
    connector = SimulatedConnector(version("0.15"), ingress_url="http://127.0.0.1:1", api_key="unused")
    await connector.start()
    yield connector
    await connector.stop()


def connector(sim: SimulatedConnector, issuer: OAuth2Issuer, secret: str) -> EdcConnector:
    return EdcConnector(
        name="provider",
        api_key=SecretStr("inbound-key-0123456789"),
        management_url=sim.management_url,
        management_api_version=sim.version.management_path,
        management_api_key=SecretStr(sim.management_key),
        token_url=issuer.token_url,
        client_id=CLIENT_ID,
        client_secret=SecretStr(secret),
        audience=AUDIENCE,
        scope="signaling",
    )


def target(sim: SimulatedConnector, callback_address: str | None = None) -> ProvisionTarget:
    transfer = sim.ledger.new_transfer("carla-minimal", "did:web:consumer.example")
    return ProvisionTarget(
        connector="provider",
        generation="control-plane-http",
        transfer_process_id=transfer.id,
        callback_address=callback_address or sim.callback_address,
        asset_id=transfer.asset_id,
        resource_definition_id=transfer.resource_definition_id,
        provision_resource_id=transfer.provision_resource_id,
        flow_id=transfer.id,
    )


async def test_callbacks_carry_a_token_whose_sub_is_the_client_id(
    simulator: SimulatedConnector, issuer: OAuth2Issuer, calls: MongoEdcCallLog
) -> None:
    secret = issuer.add_client(CLIENT_ID)
    edc = HttpEdcClient(ConnectorRegistry(connectors=(connector(simulator, issuer, secret),)), calls, backoff=[0.0])
    try:
        first, second = target(simulator), target(simulator)
        await asyncio.gather(
            edc.provisioned(first, ACCESS, resource_name="r1"), edc.provisioned(second, ACCESS, resource_name="r2")
        )
        await edc.deprovisioned(first)
        # A management API read carries its key only.
        await edc.transfer_process("provider", first.transfer_process_id)
    finally:
        await edc.close()

    received = simulator.ledger.callbacks
    assert len(received) == 3 and all(c.authorized for c in received)
    tokens = {c.authorization for c in received}
    assert len(tokens) == 1  # fetched once, concurrently asked, reused
    (header,) = tokens
    assert header is not None and header.startswith("Bearer ")
    async with httpx.AsyncClient() as http:
        keys = jwt.PyJWKSet.from_dict((await http.get(issuer.jwks_url)).json())
    raw = header.removeprefix("Bearer ")
    key = keys[jwt.get_unverified_header(raw)["kid"]]
    claims = jwt.decode(raw, key, algorithms=["EdDSA"], audience=AUDIENCE)
    assert claims["sub"] == CLIENT_ID and claims["iss"] == issuer.issuer and claims["scope"] == "signaling"
    assert [r.granted for r in issuer.requests] == [True]


async def test_without_credentials_or_outside_the_callback_bases_no_token_is_sent(
    simulator: SimulatedConnector, issuer: OAuth2Issuer, calls: MongoEdcCallLog
) -> None:
    secret = issuer.add_client(CLIENT_ID)
    edc = HttpEdcClient(ConnectorRegistry(connectors=(connector(simulator, issuer, secret),)), calls, backoff=[0.0])
    plain = connector(simulator, issuer, secret).model_copy(
        update={"token_url": None, "client_id": None, "client_secret": None}
    )
    try:
        assert await edc.callback_headers(plain, simulator.callback_address + "/x/provision") == {}
        assert await edc.callback_headers(edc.registry.get("provider"), "http://elsewhere.example/cb") == {}
    finally:
        await edc.close()
    assert issuer.requests == []


async def test_a_refused_client_is_a_failed_callback_not_an_unauthenticated_one(
    simulator: SimulatedConnector, issuer: OAuth2Issuer, calls: MongoEdcCallLog
) -> None:
    issuer.add_client(CLIENT_ID)
    wrong = connector(simulator, issuer, "not-the-secret")
    edc = HttpEdcClient(ConnectorRegistry(connectors=(wrong,)), calls, backoff=[0.0])
    try:
        with pytest.raises(EdcError) as failed:
            await edc.provisioned(target(simulator), ACCESS, resource_name="r1")
    finally:
        await edc.close()
    assert failed.value.status == 401 and "token" in str(failed.value)
    assert simulator.ledger.callbacks == []
    recorded = await calls.calls()
    assert [(c.operation, c.outcome, c.status) for c in recorded] == [("provisioned", "client_error", 401)]


async def test_the_token_is_fetched_again_shortly_before_it_expires(
    simulator: SimulatedConnector, issuer: OAuth2Issuer, calls: MongoEdcCallLog
) -> None:
    issuer.lifetime = 31  # within the 30 s margin after one second
    secret = issuer.add_client(CLIENT_ID)
    edc = HttpEdcClient(ConnectorRegistry(connectors=(connector(simulator, issuer, secret),)), calls, backoff=[0.0])
    try:
        await edc.provisioned(target(simulator), ACCESS, resource_name="r1")
        await asyncio.sleep(1.1)
        await edc.provisioned(target(simulator), ACCESS, resource_name="r2")
    finally:
        await edc.close()
    assert len(issuer.requests) == 2
    assert len({c.authorization for c in simulator.ledger.callbacks}) == 2


async def test_a_callback_refused_with_401_drops_the_token(
    simulator: SimulatedConnector, issuer: OAuth2Issuer, calls: MongoEdcCallLog
) -> None:
    secret = issuer.add_client(CLIENT_ID)
    refusing = connector(simulator, issuer, secret).model_copy(
        update={"management_api_key": SecretStr("not-the-management-key")}
    )
    edc = HttpEdcClient(ConnectorRegistry(connectors=(refusing,)), calls, backoff=[0.0])
    try:
        for name in ("r1", "r2"):
            with pytest.raises(EdcError):
                await edc.provisioned(target(simulator), ACCESS, resource_name=name)
    finally:
        await edc.close()
    # The control plane said 401: the next callback asks for a fresh token rather than resend the refused one.
    assert len(issuer.requests) == 2
    assert len({c.authorization for c in simulator.ledger.callbacks}) == 2
