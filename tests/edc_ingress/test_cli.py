"""`gxwf edc-ingress` alone, the ingress inside `gxwf up` with its generated key, and bad configuration."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import structlog
from nats.js import JetStreamContext

from events import subjects as s
from gxwf.cli import main
from tests.backbone.conftest import stream_events
from tests.cli.test_up import start_up, wait_for_line
from tests.edc_ingress.test_routes import control_plane
from tests.stack_env import server_env

if TYPE_CHECKING:
    from devstack import StackEndpoints

KEY = "cli-key-0123456789abcdef"


def gxwf(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gxwf", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    return {**env, "COLUMNS": "200", **extra}


async def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 30)


async def test_up_generates_prints_and_keeps_an_api_key_and_demos_a_connector(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = start_up(state, "--demo")
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        # The demo's connector got its negotiation and provision request through the ingress.
        assert "demo: a provider connector (EDC 0.15) calls the ingress" in output
        assert "edc.negotiation.finalized" in output and "edc.provision.requested" in output
        # Not printed without --show-secrets: where it is kept is.
        assert f"x-api-key: in {state / 'edc-api-key'} (generated" in output, output
        key = (state / "edc-api-key").read_text().strip()
        assert key not in output
        url = json.loads((state / "endpoints.json").read_text())["edc_ingress"]
        assert url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.post("/edc/provisioner", json=control_plane())).status_code == 401
            ok = await client.post("/edc/provisioner", json=control_plane(), headers={"x-api-key": key})
            assert ok.status_code == 200, ok.text
            assert (await client.get("/readyz")).json()["ready"] is True
        # Kept for the next start (and for `gxwf edc simulate`), readable by its owner only.
        assert (state / "edc-api-key").read_text().strip() == key
        assert (state / "edc-api-key").stat().st_mode & 0o777 == 0o600
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)


async def test_edc_ingress_serves_alone(stack: StackEndpoints, js: JetStreamContext, tmp_path: Path) -> None:
    env = clean_env(
        **server_env(stack, "edc_ingress"),
        GXWF_EDC_API_KEY=KEY,
        GXWF_EDC_API_KEY_HEADER="X-Edc-Key",
    )
    proc = gxwf("edc-ingress", "--port", "0", "--state-dir", str(tmp_path), env=env)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
        assert line.startswith("edc ingress listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/edc/provisioner", json=control_plane(), headers={"X-Edc-Key": KEY})
            assert response.status_code == 200, response.text
    finally:
        code = await stop(proc)
    assert code == 0
    (event,) = await stream_events(js, "edc.>")
    assert event["type"] == s.EDC_PROVISION_REQUESTED


async def test_edc_ingress_uses_the_key_up_kept(stack: StackEndpoints, tmp_path: Path) -> None:
    """Without GXWF_EDC_API_KEY, the key kept in the state directory, the one `gxwf edc simulate` reads; with
    none kept, one generated and kept the same way."""
    env = clean_env(**server_env(stack, "edc_ingress"))
    kept = tmp_path / "edc-api-key"
    for existing in ("kept-key-0123456789abcdef", None):
        if existing is not None:
            kept.write_text(existing + "\n")
        else:
            kept.unlink()
        proc = gxwf("edc-ingress", "--port", "0", "--state-dir", str(tmp_path), env=env)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line.startswith("edc ingress listening on "), line
            key = kept.read_text().strip()
            if existing is None:
                assert kept.stat().st_mode & 0o777 == 0o600
            else:
                assert key == existing
            async with httpx.AsyncClient(base_url=line.split()[-1]) as client:
                refused = await client.post("/edc/provisioner", json=control_plane(), headers={"x-api-key": "x" * 20})
                assert refused.status_code == 401
                response = await client.post("/edc/provisioner", json=control_plane(), headers={"x-api-key": key})
                assert response.status_code == 200, response.text
        finally:
            assert await stop(proc) == 0
        assert proc.stderr is not None
        assert f"edc api key: x-api-key: {key}" in proc.stderr.read()


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stack: StackEndpoints, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., str]]:
    """Run `gxwf edc-ingress ARGS` in this process with only the given GXWF_* variables; its stderr."""
    for name in [n for n in os.environ if n.startswith("GXWF_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GXWF_NATS_URL", stack.nats_for("edc_ingress"))
    monkeypatch.setenv("GXWF_MONGO_URL", stack.mongo)

    def run(*args: str, **env: str) -> str:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["edc-ingress", *args])
        stderr = capsys.readouterr().err
        assert done.value.code == 2, stderr
        assert stderr.count("\n") == 1 and stderr.startswith("gxwf: error: "), stderr
        return stderr

    yield run
    # `gxwf` pointed structlog at the captured stderr, which pytest closes after the test.
    structlog.reset_defaults()


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"GXWF_EDC_API_KEY": "password"}, [], "GXWF_EDC_API_KEY: Value error, must be at least 16 characters"),
        ({"GXWF_EDC_API_KEY": KEY, "GXWF_EDC_API_KEY_HEADER": "bad header"}, [], "GXWF_EDC_API_KEY_HEADER: "),
        ({"GXWF_EDC_API_KEY": KEY, "GXWF_EDC_BODY_LIMIT_BYTES": "12"}, [], "GXWF_EDC_BODY_LIMIT_BYTES: "),
        ({"GXWF_EDC_API_KEY": KEY, "GXWF_EDC_MANAGEMENT_API_VERSION": "3"}, [], "GXWF_EDC_MANAGEMENT_API_VERSION"),
        ({"GXWF_EDC_API_KEY": KEY}, ["--port", "70000"], "--port"),
        ({"GXWF_EDC_CONNECTORS_FILE": "/nonexistent/c.yaml"}, [], "GXWF_EDC_CONNECTORS_FILE /nonexistent/c.yaml"),
    ],
)
def test_bad_configuration_is_one_line_and_status_2(
    cli: Callable[..., str], env: dict[str, str], args: list[str], message: str
) -> None:
    assert message in cli(*args, **env)


def test_connectors_file_entries_are_checked(cli: Callable[..., str], tmp_path: Path) -> None:
    config = tmp_path / "connectors.yaml"
    cases = {
        "connectors: {}": "expected a mapping with a list `connectors`",
        "connectors:\n  - name: a\n    api_key_env: MISSING_VAR": "connectors[0].api_key_env: environment variable",
        "connectors:\n  - name: a b\n    api_key: 0123456789abcdefXYZ": "connectors[0].name: String should match",
        "connectors:\n  - name: a\n    api_key: 0123456789abcdefXYZ\n    colour: red": "connectors[0].colour: Extra",
        "connectors:\n  - {name: a, api_key: 0123456789abcdefXYZ}\n  - {name: a, api_key: 0123456789abcdefABC}": (
            "connector names must be unique: a"
        ),
        "connectors:\n  - {name: a, api_key: 0123456789abcdefXYZ}\n  - {name: b, api_key: 0123456789abcdefXYZ}": (
            "two connectors share a header and secret"
        ),
        "connectors: [": "not YAML or JSON",
    }
    for text, message in cases.items():
        config.write_text(text)
        assert message in cli(GXWF_EDC_CONNECTORS_FILE=str(config)), text


def test_a_taken_port_is_reported(cli: Callable[..., str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert f"cannot listen on 127.0.0.1:{port}" in cli("--port", str(port), GXWF_EDC_API_KEY=KEY)
