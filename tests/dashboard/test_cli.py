"""`gxwf dashboard` alone and `gxwf events tail` with the dashboard's filters, as processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from nats.js import JetStreamContext

from gxwf.cli import main
from gxwf.settings import Settings
from tests.dashboard.conftest import publish_run_requested
from tests.stack_env import server_env

if TYPE_CHECKING:
    from devstack import StackEndpoints


def env_for(stack: StackEndpoints, settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= server_env(stack, "dashboard")
    env |= {"GXWF_MONGO_DATABASE": settings.mongo_database, "GXWF_STATE_DIR": str(settings.state_dir)}
    return env


def gxwf(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gxwf", *args], env=env, capture_output=True, text=True, timeout=60)


async def test_dashboard_alone_generates_tokens_and_refuses_without_one(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "dashboard", "--port", "0"],
        env=env_for(stack, settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [await asyncio.to_thread(proc.stdout.readline) for _ in range(3)]
        url = lines[0].strip().rsplit(" ", 1)[-1]
        assert url.startswith("http://127.0.0.1:"), lines
        tokens = dict(line.split(" ", 1)[0].split("=", 1) for line in lines[1:])
        assert set(tokens) == {"GXWF_DASHBOARD_TOKEN", "GXWF_DASHBOARD_ADMIN_TOKEN"}
        assert (Path(settings.state_dir) / "dashboard-token").read_text().strip() == tokens["GXWF_DASHBOARD_TOKEN"]
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/overview")).status_code == 401
            bearer = {"Authorization": f"Bearer {tokens['GXWF_DASHBOARD_TOKEN']}"}
            assert (await http.get("/overview", headers=bearer)).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)
    assert proc.returncode == 0


async def test_events_tail_filters_and_replays_like_the_dashboard(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext
) -> None:
    for index in range(6):
        await publish_run_requested(js, f"cli-{index}", consumer="did:web:even" if index % 2 == 0 else "did:web:odd")
    env = env_for(stack, settings)
    tail = ["events", "tail", "--json", "--timeout", "1.5"]
    even = gxwf(*tail, "--since", "1", "--consumer", "did:web:even", env=env)
    assert even.returncode == 0, even.stderr
    lines = [json.loads(line) for line in even.stdout.splitlines()]
    assert [line["event"]["data"]["run_id"] for line in lines] == ["cli-0", "cli-2", "cli-4"]
    assert [line["seq"] for line in lines] == [1, 3, 5]
    later = gxwf(*tail, "--since", "4", "--subject", "wf.run.requested", env=env)
    assert [json.loads(line)["seq"] for line in later.stdout.splitlines()] == [4, 5, 6]
    text = gxwf(*tail, "--since", "1h", "--grep", "CLI-5", env=env)
    assert [json.loads(line)["seq"] for line in text.stdout.splitlines()] == [6]


def test_events_tail_bad_options_are_one_line_with_status_2(
    stack: StackEndpoints, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in env_for(stack, settings).items():
        if name.startswith("GXWF_"):
            monkeypatch.setenv(name, value)
    cases = [
        (["--since", "last tuesday"], "--since"),
        (["--since", "0"], "--since"),
        (["--replay", "--since", "5"], "--replay and --since"),
        (["--consumer", "x" * 300], "--consumer"),
        (["--subject", "wf.*x"], "--subject"),
        (["--subject", "nosuch.stream"], "--subject nosuch.stream: no stream holds it"),
    ]
    for args, expected in cases:
        with pytest.raises(SystemExit) as exited:
            main(["events", "tail", "--timeout", "0.5", *args])
        stderr = capsys.readouterr().err
        assert exited.value.code == 2, (args, stderr)
        assert expected in stderr and len(stderr.strip().splitlines()) == 1, (args, stderr)


def test_dashboard_bad_settings_are_one_line_with_status_2(
    stack: StackEndpoints,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refused(args: list[str], expected: str) -> None:
        with pytest.raises(SystemExit) as exited:
            main(args)
        stderr = capsys.readouterr().err
        assert exited.value.code == 2 and expected in stderr and len(stderr.strip().splitlines()) == 1, stderr

    for name in [k for k in os.environ if k.startswith("GXWF_")]:
        monkeypatch.delenv(name)
    refused(["dashboard", "--state-dir", str(tmp_path / "empty")], "no nats, mongo, s3 server known")
    for name, value in env_for(stack, settings).items():
        if name.startswith("GXWF_"):
            monkeypatch.setenv(name, value)
    # Nowhere to keep a generated token (a read-only container; here: a state directory under a plain file).
    (tmp_path / "a-file").write_text("")
    refused(["dashboard", "--state-dir", str(tmp_path / "a-file" / "state")], "GXWF_DASHBOARD_TOKEN: unset, and a")
    monkeypatch.setenv("GXWF_DASHBOARD_TOKEN", "short")
    refused(["dashboard"], "GXWF_DASHBOARD_TOKEN / GXWF_DASHBOARD_ADMIN_TOKEN: dashboard tokens need at least 16")
    monkeypatch.setenv("GXWF_DASHBOARD_TOKEN", "the-same-token-twice-000")
    monkeypatch.setenv("GXWF_DASHBOARD_ADMIN_TOKEN", "the-same-token-twice-000")
    refused(["dashboard"], "must differ")
    monkeypatch.setenv("GXWF_DASHBOARD_PORT", "99999")
    refused(["dashboard"], "GXWF_DASHBOARD_PORT")
    monkeypatch.delenv("GXWF_DASHBOARD_PORT")
    monkeypatch.setenv("GXWF_DASHBOARD_ADMIN_TOKEN", "another-admin-token-0001")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        refused(["dashboard", "--port", str(taken.getsockname()[1])], "--port / GXWF_DASHBOARD_PORT: cannot listen")
