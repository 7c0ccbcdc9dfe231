"""docs/edc.md's trial as written: `gxwf up`, then `gxwf edc simulate --version V` in the same state directory,
for every simulated EDC version; and the same after `gxwf up --demo`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from edc_simulator.versions import VERSIONS
from tests.cli.test_up import start_up, wait_for_line


def simulate(state: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "gxwf", "edc", "simulate", "--state-dir", str(state), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


async def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.wait, 60)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def plain_up(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Path, str]]:
    """One `gxwf up` (not --demo) shared by every version: its state directory and what it printed."""
    state = tmp_path_factory.mktemp("trial") / "state"
    proc = start_up(state)
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        yield state, output
    finally:
        await stop(proc)


async def test_up_applies_the_shipped_assets_to_an_empty_catalogue(plain_up: tuple[Path, str]) -> None:
    _, output = plain_up
    found = re.search(r"assets\s*│\s*applied (\S+) \(the catalogue was empty\): (.*?)\s*│", output)
    assert found, output
    assert found.group(1).endswith("deploy/assets")
    assert "carla-minimal-cpu v1" in found.group(2) and "shell-count v1" in found.group(2)


@pytest.mark.parametrize("edc_version", sorted(VERSIONS))
async def test_the_trial_as_written(plain_up: tuple[Path, str], edc_version: str) -> None:
    state, _ = plain_up
    # EDC 0.18 also speaks Data Plane Signaling (its default): here its provisioner requests.
    flow = ["--provisioning"] if edc_version == "0.18" else []
    done = await asyncio.to_thread(simulate, state, "--version", edc_version, *flow, "--callback-timeout", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    api = VERSIONS[edc_version].management_path
    assert f"EDC {edc_version} simulator: management API http://127.0.0.1:" in done.stdout
    assert f"({api}, x-api-key:" in done.stdout and "registered in" in done.stdout
    # Access granted: the consumer's WorkflowApi address came back to the connector, then it was torn down.
    assert re.search(r"provision callback received \(\S+ path\): http://127\.0\.0\.1:\d+", done.stdout), done.stdout
    assert "deprovision callback received" in done.stdout, done.stdout
    # Registered while it ran, gone when it ended.
    assert not (state / "edc-simulator.json").exists()


async def test_the_trial_fails_with_the_cause(plain_up: tuple[Path, str], tmp_path: Path) -> None:
    state, _ = plain_up
    big = tmp_path / "big.yaml"
    big.write_text("id: big-cpu\ntitle: Too big\ncommand: [/bin/true]\nresources: {cpu: 1000, memory: 1Gi}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    applied = subprocess.run(
        [sys.executable, "-m", "gxwf", "assets", "apply", str(big), "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stderr

    too_big = await asyncio.to_thread(simulate, state, "--version", "0.15", "--asset", "big-cpu")
    assert too_big.returncode == 1, too_big.stdout + too_big.stderr
    assert re.search(r"failed \(deployment\): no site fits: local: 1000 cpu > \d", too_big.stdout), too_big.stdout
    assert "management API" not in too_big.stdout.split("registered in")[-1], too_big.stdout

    unknown = await asyncio.to_thread(simulate, state, "--version", "0.18", "--provisioning", "--asset", "nothing-here")
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert "failed (asset): unknown EDC asset id 'nothing-here'" in unknown.stdout, unknown.stdout


async def test_keep_access_writes_a_client_profile_that_works(plain_up: tuple[Path, str], tmp_path: Path) -> None:
    """docs/workflow-api.md: a consumer's token outside the demo."""
    state, _ = plain_up
    done = await asyncio.to_thread(simulate, state, "--version", "0.15", "--asset", "shell-count", "--keep-access")
    assert done.returncode == 0, done.stdout + done.stderr
    profile = state / "simulated-consumer.json"
    assert f"gxwf client --profile {profile}" in done.stdout.replace("\n", ""), done.stdout
    assert profile.stat().st_mode & 0o777 == 0o600
    assert set(json.loads(profile.read_text())) == {"url", "token"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    listed = subprocess.run(
        [sys.executable, "-m", "gxwf", "client", "--profile", str(profile), "assets", "list"],
        env=env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert "shell-count" in listed.stdout, listed.stdout
    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\n")
    run = ["-i", f"text=@{notes}", "-p", "GREETING=hi", "--follow"]
    started = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gxwf", "client", "--profile", str(profile), "run", "start", "shell-count", *run],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert "hi" in started.stdout, started.stdout


async def test_the_trial_after_up_demo(tmp_path: Path) -> None:
    """The demo's own simulator answers only while no other is registered: the new one is asked."""
    state = tmp_path / "state"
    proc = start_up(state, "--demo")
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        assert re.search(r"transfer [0-9a-f-]{36}: granted", output), output
        # The demo applied the shipped definition as it is: applying deploy/assets again changes nothing, so
        # `carla-minimal` still means the CPU stand-in.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "200"}
        shipped = Path(__file__).parents[2] / "deploy" / "assets"
        again = subprocess.run(
            [sys.executable, "-m", "gxwf", "assets", "apply", str(shipped), "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert again.returncode == 0 and again.stdout.count("unchanged") == 2, again.stdout + again.stderr
        done = await asyncio.to_thread(simulate, state, "--version", "0.10", "--callback-timeout", "30")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "deprovision callback received" in done.stdout, done.stdout
    finally:
        await stop(proc)


async def _serves_dataflows(state: Path) -> bool:
    """Whether the running ingress speaks Data Plane Signaling (an ingress without it answers 404)."""
    import httpx

    endpoints = json.loads((state / "endpoints.json").read_text())
    key = (state / "edc-api-key").read_text().strip()
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{endpoints['edc_ingress']}/dataflows/start", json={}, headers={"x-api-key": key})
    return answer.status_code not in (404, 405)


@pytest.mark.parametrize("edc_version", ["0.18", "main"])
async def test_the_dps_trial_as_written(plain_up: tuple[Path, str], tmp_path: Path, edc_version: str) -> None:
    """docs/edc.md: `gxwf up` with the simulator's signaling URL configured, then `gxwf edc simulate --version
    0.18|main`: registration, start, the `started` callback (answered 409 once) with a token that opens the
    WorkflowApi, suspend (401), resume (a new token that works), terminate (401)."""
    if not await _serves_dataflows(plain_up[0]):
        pytest.skip("this ingress has no /dataflows route (Data Plane Signaling) yet")
    from http_serving.server import free_port

    port = free_port()
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {
        "COLUMNS": "250",
        "GXWF_EDC_SIGNALING_URL": f"http://127.0.0.1:{port}/api/signaling",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await wait_for_line(proc, "Running.")
        args = ["--version", edc_version, "--port", str(port), "--terminate", "--conflict-first-callback"]
        done = await asyncio.to_thread(simulate, state, *args, "--asset", "shell-count", "--callback-timeout", "60")
    finally:
        await stop(proc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "callback received: started (STARTED), answered 409" in done.stdout, done.stdout
    assert "callback received: started (STARTED), answered 204" in done.stdout, done.stdout
    for moment, status in (("start", 200), ("suspend", 401), ("resume (new token)", 200), ("terminate", 401)):
        assert re.search(rf"token after {re.escape(moment)}: GET \S+/v1/assets -> {status} ", done.stdout), done.stdout


async def test_the_dps_trial_with_oauth2_as_written(plain_up: tuple[Path, str], tmp_path: Path) -> None:
    """docs/edc.md: `gxwf up` configured with the simulator's issuer (its fixed port) and the data plane's client
    secret, then `gxwf edc simulate --version main --oauth2`: every message carries the issuer's token, every
    callback the data plane's, and the story goes through."""
    if not await _serves_dataflows(plain_up[0]):
        pytest.skip("this ingress has no /dataflows route (Data Plane Signaling) yet")
    from http_serving.server import free_port

    port, issuer_port = free_port(), free_port()
    issuer, secret = f"http://127.0.0.1:{issuer_port}", "trial-client-secret-0123456789"
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    env |= {
        "GXWF_EDC_SIGNALING_URL": f"http://127.0.0.1:{port}/api/signaling",
        "GXWF_EDC_JWKS_URL": f"{issuer}/.well-known/jwks.json",
        "GXWF_EDC_TOKEN_ISSUER": issuer,
        "GXWF_EDC_TOKEN_AUDIENCE": "dataplane-signaling",
        "GXWF_EDC_TOKEN_SUBJECT": "gxwf-dataplane",
        "GXWF_EDC_TOKEN_URL": f"{issuer}/oauth2/token",
        "GXWF_EDC_CLIENT_ID": "gxwf-dataplane",
        "GXWF_EDC_CLIENT_SECRET": secret,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    args = ["--version", "main", "--oauth2", "--oauth2-port", str(issuer_port), "--port", str(port), "--terminate"]
    args += ["--state-dir", str(state), "--asset", "shell-count"]
    try:
        await wait_for_line(proc, "Running.")
        done = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "gxwf",
                "edc",
                "simulate",
                "--state-dir",
                str(state),
                *args,
                "--asset",
                "shell-count",
            ],
            env={k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
            | {"COLUMNS": "250", "GXWF_EDC_CLIENT_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        await stop(proc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"OAuth2 issuer: {issuer}" in done.stdout and "GXWF_EDC_CLIENT_SECRET: the one set" in done.stdout
    assert "OAuth2 both ways: messages carry tokens of" in done.stdout, done.stdout
    assert "callback received: started (STARTED), answered 204" in done.stdout, done.stdout
    for moment, status in (("start", 200), ("suspend", 401), ("resume (new token)", 200), ("terminate", 401)):
        assert re.search(rf"token after {re.escape(moment)}: GET \S+/v1/assets -> {status} ", done.stdout), done.stdout
    assert secret not in done.stdout


@pytest.mark.parametrize("edc_version", ["0.18", "main"])
async def test_up_demo_through_dps(plain_up: tuple[Path, str], tmp_path: Path, edc_version: str) -> None:
    """`gxwf up --demo --edc-version 0.18|main`: the demo's connector drives the ingress's /dataflows, and its
    consumer works with the token of the `started` callback, with OAuth2 both ways as EDC does it: its messages
    carry its issuer's tokens, our callbacks the data plane's own, which it verifies."""
    if not await _serves_dataflows(plain_up[0]):
        pytest.skip("this ingress has no /dataflows route (Data Plane Signaling) yet")
    proc = start_up(tmp_path / "state", "--demo", "--edc-version", edc_version)
    try:
        output = "".join(await wait_for_line(proc, "Running.", timeout=240))
    finally:
        await stop(proc)
    assert f"a provider connector (EDC {edc_version}) calls the data plane signaling endpoint" in output, output
    assert "callback received: started (STARTED), answered 204" in output, output
    assert "demo: all 4 steps succeeded" in output, output
    assert "OAuth2 both ways: messages carry tokens of http://127.0.0.1:" in output, output
    assert "demo connector's OAuth2 issuer: http://127.0.0.1:" in output, output


def test_up_edc_version_bad_input(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    for args, message in (
        (["--demo", "--edc-version", "0.7"], "--edc-version 0.7: unknown EDC version '0.7'"),
        (["--edc-version", "0.18"], "--edc-version: only with --demo"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "gxwf", "up", "--state-dir", str(tmp_path), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2 and message in done.stderr and done.stderr.count("\n") == 1, done.stderr
