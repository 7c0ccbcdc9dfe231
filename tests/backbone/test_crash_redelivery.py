"""A handler process killed with SIGKILL mid-event: the event comes back and takes effect exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, stream_events

GXWF = [sys.executable, "-m", "gxwf"]


def handler_env(settings: Settings, faults: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GXWF_NATS_URL=str(settings.nats_url),
        GXWF_MONGO_URL=str(settings.mongo_url),
        GXWF_S3_ENDPOINT=str(settings.s3_endpoint),
        GXWF_S3_ACCESS_KEY=settings.s3_access_key or "",
        GXWF_S3_SECRET_KEY=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        GXWF_MONGO_DATABASE=settings.mongo_database,
        GXWF_STATE_DIR=str(settings.state_dir),
        GXWF_ACK_WAIT_SECONDS="2",
        GXWF_WATCH_INTERVAL_SECONDS="0.1",
        GXWF_FAULT_POINTS=faults,
    )
    return env


async def start_handlers(settings: Settings, faults: str = "") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*GXWF, "handlers", "run", "--only", "jobs"],
        env=handler_env(settings, faults),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
    assert line.strip() == b"handlers ready", line
    return proc


@pytest.mark.parametrize("point", ["jobs.before_start", "jobs.after_start"])
async def test_sigkill_mid_handling_redelivers_and_applies_once(
    point: str, settings: Settings, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> None:
    marker = tmp_path / "executions"
    first = await start_handlers(settings, faults=f"{point}=sleep:120")
    try:
        request = new_event(
            s.RUN_REQUESTED,
            RunRequested(
                run_id="crash-1",
                consumer_id="c-1",
                asset_id="shell",
                spec=RunSpec(command=["/bin/sh", "-c", f"echo once >> {marker}; sleep 0.5"]),
            ),
        )
        await js.publish(s.RUN_REQUESTED, request.model_dump_json().encode(), headers={"Nats-Msg-Id": request.id})

        async def held_at_point() -> bool:
            doc = await store.get(RunDocument, "crash-1")
            started = marker.exists()
            return doc is not None and doc.state == RunState.PENDING and started == (point == "jobs.after_start")

        await eventually(held_at_point)

        async def handler_holds_the_event() -> bool:
            # Delivered, not acked: the start handler sits at the fault point with the event in hand.
            info = await js.consumer_info("WF", "jobs-start-pending-local")
            return info.num_ack_pending == 1

        await eventually(handler_holds_the_event)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert first.returncode == -signal.SIGKILL

    second = await start_handlers(settings)
    try:

        async def succeeded() -> RunDocument | None:
            doc = await store.get(RunDocument, "crash-1")
            return doc if doc is not None and doc.state == RunState.SUCCEEDED else None

        doc = await eventually(succeeded, timeout=30)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=20)
    assert second.returncode == 0

    assert marker.read_text() == "once\n"
    assert [(h.from_, h.to) for h in doc.history] == [
        (None, "queued"),
        ("queued", "pending"),
        ("pending", "running"),
        ("running", "succeeded"),
    ]
    events = [e["type"] for e in await stream_events(js, "wf.run.>")]
    assert events == [s.RUN_REQUESTED, s.RUN_QUEUED, s.RUN_PENDING, s.RUN_RUNNING, s.RUN_SUCCEEDED]
    # The first process never got past the fault point, so `running` proves the redelivery was handled.
    info = await js.consumer_info("WF", "jobs-start-pending-local")
    assert info.num_ack_pending == 0 and info.num_pending == 0
