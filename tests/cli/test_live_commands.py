"""CLI commands against the real servers: events tail for scripts and people, the worker health endpoint."""

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
import nats
import pytest

from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from events.streams import ensure_streams
from tests.stack_env import server_env

if TYPE_CHECKING:
    from devstack import StackEndpoints


def env_for(stack: StackEndpoints, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env.update(
        **server_env(stack),
        GXWF_STATE_DIR=str(tmp_path / "state"),
        GXWF_MONGO_DATABASE=f"cli_{os.getpid()}_{tmp_path.name[-8:]}".replace("-", "_"),
    )
    return env


async def test_events_tail_json_prints_one_parseable_line_per_event(stack: StackEndpoints, tmp_path: Path) -> None:
    nc = await nats.connect(stack.nats)
    js = nc.jetstream()
    await ensure_streams(js)
    run_ids = [f"tail-{tmp_path.name[-6:]}-{i}" for i in range(3)]
    for run_id in run_ids:
        event = new_event(
            s.RUN_REQUESTED,
            RunRequested(run_id=run_id, consumer_id="c", asset_id="a", spec=RunSpec(command=["true"])),
        )
        await js.publish(s.RUN_REQUESTED, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})
    await nc.close()

    args = ["events", "tail", "--replay", "--json", "--subject", "wf.run.requested", "--timeout", "2"]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gxwf", *args],
        env=env_for(stack, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    seen = [line["event"]["data"]["run_id"] for line in lines if line["subject"] == s.RUN_REQUESTED]
    assert seen[-3:] == run_ids

    human = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gxwf", "events", "tail", "--replay", "-s", "wf.run.requested", "--timeout", "2"],
        env={**env_for(stack, tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert human.returncode == 0
    assert "wf.run.requested" in human.stdout and f"run_id={run_ids[-1]}" in human.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_handlers_serve_health_readiness_and_metrics(stack: StackEndpoints, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "handlers.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "handlers", "run", "--only", "jobs", "--health-port", str(port)],
        env=env_for(stack, tmp_path),
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
        assert line.strip() == b"handlers ready"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "ready": True,
                "checks": {"handlers": "ok", "nats": "ok", "mongo": "ok", "s3": "ok"},
            }
            metrics = await client.get("/metrics")
            assert metrics.status_code == 200
            assert "gxwf_events_handled_total" in metrics.text and "gxwf_handler_seconds" in metrics.text
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()  # never left behind, whatever failed
            proc.wait()
            raise AssertionError("still running 30 s after SIGTERM; its log:\n" + log.read_text()[-6000:]) from None
    assert proc.returncode == 0


@pytest.mark.parametrize("after", [0.3, 1.0, 2.0])
async def test_handlers_stopped_while_starting_exit_promptly(
    stack: StackEndpoints, tmp_path: Path, after: float
) -> None:
    # A SIGTERM (Kubernetes stopping a pod, a test giving up) may come at any moment of the start-up: the process
    # must stop what had started and exit, never hang half-started.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "handlers", "run", "--only", "jobs", "--health-port", str(free_port())],
        env=env_for(stack, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await asyncio.sleep(after)
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM)
