"""The simulator as an EDC 0.18 or main control plane with OAuth2 both ways (EDC's data-plane-signaling-oauth2)
against the real ingress, bus, store, handlers and WorkflowApi: its messages carry its issuer's tokens instead of
the API key, the data plane's callbacks carry the data plane's own; a wrong token either way is refused and shows
in the simulator's report."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from nats.js import JetStreamContext
from pydantic import SecretStr
from rich.console import Console

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator import dps
from edc_simulator.connector import SimulatedConnector
from edc_simulator.dps_story import dps_story
from edc_simulator.versions import version
from gxwf.definitions import load_assets
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from gxwf.simulate import OAUTH2_ENV, print_dps
from http_serving.server import free_port
from schemas.connectors import ConnectorRegistry, EdcConnector
from tests.backbone.conftest import endpoints
from tests.edc_fixtures import KEY
from tests.provisioning.conftest import ASSETS
from tests.workflow_api.conftest import api_service

__all__ = ["endpoints"]

DATASET = "shell-count"
CONSUMER = "did:web:consumer.example"
System = Callable[..., Awaitable[SimulatedConnector]]


@pytest.fixture
async def system(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, endpoints: Endpoints, store: MongoStateStore
) -> AsyncIterator[System]:
    """A simulated control plane with its issuer, and the whole provider side configured from its OAuth2 settings
    (`overrides`: what the operator got wrong)."""
    stops: list[Callable[[], Awaitable[object]]] = []

    async def start(generation: dps.Generation = "main", **overrides: Any) -> SimulatedConnector:
        sim = SimulatedConnector(version(generation), ingress_url="http://127.0.0.1:9", api_key=KEY, oauth2=True)
        await sim.start()
        stops.append(sim.stop)
        oauth2: dict[str, Any] = sim.oauth2_settings() | overrides
        oauth2["client_secret"] = SecretStr(oauth2["client_secret"])
        registry = ConnectorRegistry(
            connectors=(
                EdcConnector(name="default", api_key=SecretStr(KEY), signaling_url=sim.signaling_url, **oauth2),
            )
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
        sim.ingress_url = await ingress.start()
        stops.append(ingress.stop)
        api = api_service(settings, endpoints, workflow_api_auth_cache_seconds=0, workflow_api_revoked_grace_seconds=0)
        api_url = await api.start()
        stops.append(api.stop)
        # Local deployments tell the consumer where the WorkflowApi listens.
        configured = settings.model_copy(update={"deploy_timeout_seconds": 5.0, "workflow_api_url": api_url})
        handlers = HandlerService(configured, endpoints, connectors=registry, edc_backoff=(0.05, 0.1))
        stops.append(handlers.stop)
        await handlers.start()
        catalogue = MongoAssetCatalogue(store.db)
        for definition in [*load_assets(ASSETS), *load_assets(ASSETS / "gpu")]:
            await catalogue.apply(definition)
        return sim

    yield start
    for stop in reversed(stops):
        await stop()


def subjects(sim: SimulatedConnector) -> list[str]:
    """The `sub` of each bearer token the data plane's callbacks carried (unverified: what was presented)."""
    found = []
    for callback in sim.ledger.signals:
        scheme, _, token = (callback.authorization or "").partition(" ")
        assert scheme == "Bearer", callback
        found.append(jwt.decode(token, options={"verify_signature": False})["sub"])
    return found


@pytest.mark.parametrize("generation", dps.GENERATIONS)
async def test_oauth2_both_ways_through_the_real_data_plane(system: System, generation: dps.Generation) -> None:
    sim = await system(generation)
    sim.ledger.conflict_first = True
    report = await dps_story(sim, generation, asset_id=DATASET, consumer_id=CONSUMER, callback_timeout=30)
    assert report.ok, report
    # Registered with the OAuth2 profile EDC reads: its token endpoint, the data plane's client, the JWKS.
    assert report.dataplane is not None
    assert report.dataplane.authorization == sim.dataplane_authorization()
    assert [(s.what, s.status) for s in report.sent] == [
        ("register data plane", 200),
        ("start", 202),
        ("suspend", 200),
        ("resume", 200),
        ("terminate", 200),
    ]
    # Every message was sent with a token of the issuer (client credentials of the registered client).
    assert sim.issuer is not None
    granted = [r for r in sim.issuer.requests if r.granted]
    assert granted and {r.client_id for r in granted} == {dps.DATAPLANE_ID}
    # The data plane's callbacks carried its own token, sub = the registered data plane id: accepted (the first
    # answered 409, as a busy control plane does, and retried).
    assert [(c.kind, c.status) for c in report.callbacks] == [("started", 409), ("started", 204)]
    assert subjects(sim) == [dps.DATAPLANE_ID] * 2 and all(c.refused is None for c in report.callbacks)
    assert [(c.moment, c.status) for c in report.checks] == [
        ("after start", 200),
        ("after suspend", 401),
        ("after resume (new token)", 200),
        ("after terminate", 401),
    ]


async def test_a_forged_token_of_the_control_plane_is_refused(system: System) -> None:
    sim = await system("main")
    sim.forge_tokens = True
    report = await dps_story(sim, "main", asset_id=DATASET, consumer_id=CONSUMER, callback_timeout=5)
    assert not report.ok
    assert [(s.what, s.status) for s in report.sent] == [("register data plane", 200), ("start", 401)]
    assert report.sent[1].answer["type"].endswith("unauthorized")
    assert report.callbacks == []
    console = Console(record=True, width=250)
    print_dps(console, report)
    text = console.export_text()
    assert "start" in text and "401" in text and "OAuth2 both ways" in text


async def test_callbacks_with_another_clients_token_are_refused_and_reported(system: System) -> None:
    # The operator gave the ingress another client of the issuer: its tokens are valid, but not the data plane's.
    sim = await system("main", client_id="someone-else", client_secret="someone-elses-secret-0123")
    assert sim.issuer is not None
    sim.issuer.add_client("someone-else", "someone-elses-secret-0123")
    report = await dps_story(sim, "main", asset_id=DATASET, consumer_id=CONSUMER, callback_timeout=10)
    assert not report.ok
    assert report.sent[1].what == "start" and report.sent[1].status == 202
    refused = [c for c in report.callbacks if c.status == 401]
    assert refused and all(
        "sub 'someone-else' is not the data plane 'gxwf-dataplane'" in str(c.refused) for c in refused
    )
    console = Console(record=True, width=250)
    print_dps(console, report)
    assert "answered 401 (token refused: sub 'someone-else'" in console.export_text()


async def test_simulate_command_prints_the_settings_and_reports_the_refusal(
    stack: StackEndpoints, js: JetStreamContext, settings: Settings, tmp_path: Path
) -> None:
    """`gxwf edc simulate --oauth2` against an ingress that does not know its issuer: the data plane's settings are
    printed (the client secret written into the state directory), and the refused start is reported."""
    registry = ConnectorRegistry(connectors=(EdcConnector(name="default", api_key=SecretStr(KEY)),))
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
    issuer_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    args = ["--version", "main", "--oauth2", "--oauth2-port", str(issuer_port), "--ingress", url, "--api-key", KEY]
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gxwf", "edc", "simulate", *args, "--state-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        await ingress.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    issuer = f"http://127.0.0.1:{issuer_port}"
    for line in (
        f"GXWF_EDC_JWKS_URL={issuer}/.well-known/jwks.json",
        f"GXWF_EDC_TOKEN_ISSUER={issuer}",
        f"GXWF_EDC_TOKEN_AUDIENCE={dps.SIGNALING_AUDIENCE}",
        f"GXWF_EDC_TOKEN_SUBJECT={dps.DATAPLANE_ID}",
        f"GXWF_EDC_TOKEN_URL={issuer}/oauth2/token",
        f"GXWF_EDC_CLIENT_ID={dps.DATAPLANE_ID}",
    ):
        assert line in done.stdout, done.stdout
    written = (tmp_path / OAUTH2_ENV).read_text()
    secret = next(line for line in written.splitlines() if line.startswith("GXWF_EDC_CLIENT_SECRET="))
    assert secret.split("=", 1)[1] not in done.stdout and (tmp_path / OAUTH2_ENV).stat().st_mode & 0o777 == 0o600
    assert "refused this control plane's credentials on start (401)" in done.stdout
    assert "Traceback" not in done.stderr
