"""`gxwf edc register-dataplane` against the simulated connector's management API (PUT v4/dataplanes)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import version

SECRET = "client-secret-0123456789"
INGRESS = "http://gxwf.example:8480"


@pytest.fixture
async def connector() -> AsyncIterator[SimulatedConnector]:
    sim = SimulatedConnector(version("0.18"), ingress_url="http://127.0.0.1:1", api_key="unused")
    await sim.start()
    yield sim
    await sim.stop()


def environment(sim: SimulatedConnector | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= {"COLUMNS": "200", "GXWF_EDC_API_KEY": "inbound-key-0123456789abc"}
    if sim is not None:
        env |= {"GXWF_EDC_MANAGEMENT_URL": sim.management_url, "GXWF_EDC_MANAGEMENT_API_KEY": sim.management_key}
    return env | extra


OAUTH2 = {
    "GXWF_EDC_TOKEN_URL": "http://idp.example/token",
    "GXWF_EDC_CLIENT_ID": "gxwf-data-plane",
    "GXWF_EDC_CLIENT_SECRET": SECRET,
    "GXWF_EDC_JWKS_URL": "http://idp.example/jwks",
    "GXWF_EDC_TOKEN_ISSUER": "http://idp.example",
    "GXWF_EDC_TOKEN_AUDIENCE": "gxwf",
}


async def gxwf(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gxwf", "edc", "register-dataplane", "--state-dir", str(tmp_path), *args]
    return await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=60)


async def test_registers_once_however_often_it_runs(connector: SimulatedConnector, tmp_path: Path) -> None:
    env = environment(connector, **OAUTH2)
    args = ("--ingress", INGRESS, "--transfer-type", "HttpData-PULL", "--label", "compute")
    first = await gxwf(tmp_path, env, *args)
    second = await gxwf(tmp_path, env, *args)
    for run in (first, second):
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip().endswith(f"{connector.management_url}/v4/dataplanes: 200")
    assert len(connector.ledger.dataplane_puts) == 2
    assert {k: p.body for k, p in connector.ledger.dataplanes.items()} == {
        "gxwf-data-plane": {
            "dataplaneId": "gxwf-data-plane",
            "endpoint": f"{INGRESS}/dataflows",
            "transferTypes": ["HttpData-PULL"],
            "labels": ["compute"],
            "authorization": {
                "type": "oauth2_client_credentials",
                "tokenEndpoint": "http://idp.example/token",
                "clientId": "gxwf-data-plane",
                "clientSecret": SECRET,
                "jwksUri": "http://idp.example/jwks",
            },
        }
    }


async def test_dry_run_prints_the_body_with_the_secret_masked(tmp_path: Path) -> None:
    env = environment(None, **OAUTH2)
    run = await gxwf(tmp_path, env, "--ingress", INGRESS, "--dry-run", "--dataplane-id", "dp-1")
    assert run.returncode == 0, run.stderr
    head, _, body = run.stdout.partition("\n")
    assert head == "PUT (no management API configured)"
    printed = json.loads(body)
    assert printed["dataplaneId"] == "dp-1" and printed["transferTypes"] == ["HttpData-PULL"]
    assert printed["authorization"]["clientSecret"] == "********" and SECRET not in run.stdout
    shown = await gxwf(tmp_path, env, "--ingress", INGRESS, "--dry-run", "--show-secrets")
    assert json.loads(shown.stdout.partition("\n")[2])["authorization"]["clientSecret"] == SECRET
    # Without OAuth2 settings there is no authorization block.
    plain = await gxwf(tmp_path, environment(None), "--ingress", INGRESS, "--dry-run")
    assert "authorization" not in json.loads(plain.stdout.partition("\n")[2])


async def test_errors_are_one_line(connector: SimulatedConnector, tmp_path: Path) -> None:
    unconfigured = await gxwf(tmp_path, environment(None), "--ingress", INGRESS)
    wrong_key = await gxwf(
        tmp_path, environment(connector, GXWF_EDC_MANAGEMENT_API_KEY="wrong-key-0123456789"), "--ingress", INGRESS
    )
    no_ingress = await gxwf(tmp_path, environment(connector))
    for run, says in (
        (unconfigured, "no management API configured: set GXWF_EDC_MANAGEMENT_URL"),
        (wrong_key, "401 Request could not be authenticated"),
        (no_ingress, "no ingress known"),
    ):
        assert run.returncode == 2, run.stderr
        assert says in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert "Traceback" not in run.stderr
    assert connector.ledger.dataplanes == {}
