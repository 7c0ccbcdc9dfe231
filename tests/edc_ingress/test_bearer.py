"""A connector may authenticate with an OAuth2 bearer token of its own token issuer instead of its API key.

Two real issuers (edc_simulator.oauth2) serve tokens and JWKS on 127.0.0.1; every forged, stale or misdirected
token gets 401 problem+json and nothing reaches the bus.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from nats.js import JetStreamContext
from pydantic import SecretStr

from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from edc_ingress.service import IngressService
from edc_ingress.settings import ConfigError, EdcSettings, connector_registry
from edc_simulator.oauth2 import OAuth2Issuer, SigningKey
from events import subjects
from gxwf.settings import Settings
from schemas.connectors import ConnectorRegistry, EdcConnector
from tests.backbone.conftest import stream_events
from tests.edc_ingress.test_routes import callback, transfer_payload

KEY_A = "alpha-key-0123456789abcdef"
KEY_B = "beta-key-0123456789abcdef"
AUD = "urn:gxwf:data-plane"


@dataclass
class Setup:
    client: httpx.AsyncClient
    a: OAuth2Issuer
    b: OAuth2Issuer
    secret_a: str


@pytest.fixture
async def issuers() -> AsyncIterator[tuple[OAuth2Issuer, OAuth2Issuer]]:
    a = OAuth2Issuer(audience=AUD)
    b = OAuth2Issuer(audience=AUD, algorithm="ES256")
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


@pytest.fixture
async def setup(
    issuers: tuple[OAuth2Issuer, OAuth2Issuer],
    stack: StackEndpoints,
    js: JetStreamContext,
    settings: Settings,
    store: MongoStateStore,
) -> AsyncIterator[Setup]:
    a, b = issuers
    secret_a = a.add_client("alpha-connector")
    b.add_client("beta-connector")
    registry = ConnectorRegistry(
        connectors=(
            EdcConnector(
                name="alpha",
                api_key=SecretStr(KEY_A),
                jwks_url=a.jwks_url,
                token_issuer=a.issuer,
                token_audience=AUD,
                token_subject="alpha-connector",
            ),
            EdcConnector(
                name="beta",
                api_key_header="x-beta-key",
                api_key=SecretStr(KEY_B),
                jwks_url=b.jwks_url,
                token_issuer=b.issuer,
                token_audience=AUD,
            ),
            # No JWKS: only its API key is accepted.
            EdcConnector(name="plain", api_key_header="x-plain-key", api_key=SecretStr("plain-key-0123456789abc")),
        )
    )
    service = IngressService(
        EdcSettings(_env_file=None, edc_rate_limit_per_second=0),  # type: ignore[call-arg]
        registry,
        nats_url=stack.nats_for("edc_ingress"),
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        host="127.0.0.1",
        port=0,
    )
    url = await service.start()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        yield Setup(client, a, b, secret_a)
    await service.stop()


def event(event_id: str = "ev-1") -> dict[str, Any]:
    return callback("TransferProcessStarted", transfer_payload(), event_id)


async def post(setup: Setup, token: str, event_id: str = "ev-1") -> httpx.Response:
    return await setup.client.post("/edc/events", json=event(event_id), headers={"Authorization": f"Bearer {token}"})


def refused(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "Bearer" in response.headers["www-authenticate"]


async def connectors_on_bus(js: JetStreamContext) -> list[str]:
    """Who sent each accepted callback, in order (each is kept raw, then typed)."""
    events = await stream_events(js, "edc.>")
    return [e["data"]["connector"] for e in events if e["type"] == subjects.EDC_CALLBACK_RECEIVED]


async def test_a_token_from_the_issuers_token_endpoint_is_accepted_like_the_key(
    setup: Setup, js: JetStreamContext
) -> None:
    answer = await httpx.AsyncClient().post(
        setup.a.token_url,
        data={"grant_type": "client_credentials", "audience": AUD},
        auth=("alpha-connector", setup.secret_a),
    )
    token = answer.json()["access_token"]
    assert (await post(setup, token)).status_code == 200
    # The other connector's issuer (ES256 keys) identifies that connector; the API key still works.
    assert (await post(setup, setup.b.issue("anyone"), "ev-2")).status_code == 200
    response = await setup.client.post("/edc/events", json=event("ev-3"), headers={"x-api-key": KEY_A})
    assert response.status_code == 200
    assert await connectors_on_bus(js) == ["alpha", "beta", "alpha"]


async def test_a_rotated_key_is_fetched_once_its_kid_appears(setup: Setup, js: JetStreamContext) -> None:
    assert (await post(setup, setup.a.issue("alpha-connector"))).status_code == 200
    setup.a.rotate(keep_previous=False)
    # The JWKS was fetched before the rotation; the new kid makes the ingress fetch it again.
    assert (await post(setup, setup.a.issue("alpha-connector"), "ev-2")).status_code == 200
    assert await connectors_on_bus(js) == ["alpha", "alpha"]


def _forge_hs256(public_pem: bytes, claims: dict[str, Any], kid: str) -> str:
    """An HS256 token whose HMAC secret is the issuer's public key: the classic algorithm-confusion forgery."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


async def test_forged_stale_and_misdirected_tokens_are_refused(setup: Setup, js: JetStreamContext) -> None:
    a, b = setup.a, setup.b
    now = int(time.time())
    good: dict[str, Any] = {"iss": a.issuer, "sub": "alpha-connector", "aud": AUD, "exp": now + 60}
    public_pem = a.current.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    stranger = SigningKey.generate()
    stranger.kid = a.current.kid  # same kid, another key
    attacks = {
        "expired": a.issue("alpha-connector", exp=now - 120, iat=now - 600, nbf=now - 600),
        "not yet valid": a.issue("alpha-connector", nbf=now + 600),
        "wrong audience": a.issue("alpha-connector", audience="urn:someone-else"),
        "wrong issuer": a.issue("alpha-connector", iss="https://issuer.example"),
        "wrong subject": a.issue("mallory"),
        "no exp": a.current.sign({k: v for k, v in good.items() if k != "exp"}),
        "another key": stranger.sign(good),
        "alg none": jwt.encode(good, None, algorithm="none", headers={"kid": a.current.kid}),
        "hs256 with the public key": _forge_hs256(public_pem, good, a.current.kid),
        # Signed by A's issuer, claiming to be B's: verified against B's keys, which never signed it.
        "A's key as B's issuer": a.current.sign(good | {"iss": b.issuer}),
        # A connector without a JWKS takes no tokens, whatever they claim.
        "plain's": stranger.sign(good | {"iss": "https://plain.example"}),
        "garbage": "not.a.jwt",
    }
    for name, token in attacks.items():
        response = await post(setup, token)
        assert response.status_code == 401, name
        refused(response)
    # B's own token names B's issuer: it is B's, never A's, whatever sub and aud it carries.
    assert (await post(setup, b.issue("alpha-connector"), "ev-b")).status_code == 200
    assert await connectors_on_bus(js) == ["beta"]


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once(setup: Setup, js: JetStreamContext) -> None:
    fetches = 0
    original = setup.a.jwks

    def counted() -> dict[str, Any]:
        nonlocal fetches
        fetches += 1
        return original()

    setup.a.jwks = counted  # type: ignore[method-assign]
    assert (await post(setup, setup.a.issue("alpha-connector"))).status_code == 200
    stranger = SigningKey.generate()
    good = {"iss": setup.a.issuer, "sub": "alpha-connector", "aud": AUD, "exp": int(time.time()) + 60}
    for index in range(30):
        stranger.kid = f"made-up-{index}"
        refused(await post(setup, stranger.sign(good), f"ev-{index}"))
    assert fetches <= 2
    assert await connectors_on_bus(js) == ["alpha"]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"edc_jwks_url": "http://idp.example/jwks"}, "GXWF_EDC_JWKS_URL: Value error, jwks_url needs token_issuer"),
        ({"edc_token_issuer": "http://idp.example"}, "GXWF_EDC_TOKEN_ISSUER: Value error, token_issuer and"),
        ({"edc_token_url": "http://idp.example/token"}, "GXWF_EDC_TOKEN_URL: Value error, token_url, client_id and"),
    ],
)
def test_incomplete_oauth2_settings_are_one_line_errors(settings: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as error:
        connector_registry(EdcSettings(_env_file=None, edc_api_key=KEY_A, **settings))  # type: ignore[call-arg, arg-type]
    assert says in str(error.value) and "\n" not in str(error.value)


async def test_every_route_takes_the_token(setup: Setup) -> None:
    bearer = {"Authorization": f"Bearer {setup.a.issue('alpha-connector')}"}
    # Authenticated: the transfer is unknown (404), not the caller (401).
    assert (await setup.client.get("/access/no-such-transfer", headers=bearer)).status_code == 404
    refused(await setup.client.get("/access/no-such-transfer", headers={"Authorization": "Bearer x.y.z"}))
    refused(await setup.client.get("/access/no-such-transfer", headers={"Authorization": "Basic YTpi"}))
