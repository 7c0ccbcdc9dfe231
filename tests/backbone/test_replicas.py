"""`gxwf handlers run --replicas N`: replica processes sharing the durable consumers, restarted when they die."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually
from tests.backbone.replicas import GXWF, alive, gone, start_replicas
from tests.backbone.test_crash_redelivery import handler_env


async def request_runs(js: JetStreamContext, markers: Path, run_ids: list[str]) -> None:
    """Ad-hoc runs whose command appends its run id to markers/<run id>: one line per execution."""
    markers.mkdir(parents=True, exist_ok=True)
    for index, run_id in enumerate(run_ids):
        marker = markers / run_id
        request = new_event(
            s.RUN_REQUESTED,
            RunRequested(
                run_id=run_id,
                consumer_id=f"c-{index % 8}",
                asset_id="shell",
                spec=RunSpec(command=["/bin/sh", "-c", f"echo {run_id} >> {marker}"]),
            ),
        )
        await js.publish(s.RUN_REQUESTED, request.model_dump_json().encode(), headers={"Nats-Msg-Id": request.id})


async def all_succeeded(store: MongoStateStore, count: int) -> bool:
    return await store.count(RunDocument, states=[RunState.SUCCEEDED]) == count


async def test_a_replica_killed_is_restarted_and_the_runs_go_on(
    settings: Settings, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> None:
    replicas = await start_replicas(settings, 2, groups=("jobs",))
    try:
        first = replicas.pids()
        assert len(first) == 2 and all(alive(pid) for pid in first)
        assert replicas.record()["parent"] == replicas.parent.pid
        os.kill(first[0], signal.SIGKILL)

        async def restarted() -> bool:
            record = replicas.record()["replicas"]
            return record[0]["pid"] != first[0] and record[0]["restarts"] == 1 and alive(record[0]["pid"])

        await eventually(restarted, timeout=30)
        assert replicas.pids()[1] == first[1]  # the other one was left alone
        run_ids = [f"kill-{n}" for n in range(10)]
        await request_runs(js, tmp_path / "markers", run_ids)
        await eventually(lambda: all_succeeded(store, len(run_ids)), timeout=60)
        now = replicas.pids()
    finally:
        status = await replicas.stop()
    assert status == 0
    assert gone(now) == []
    assert not replicas.path.exists()
    for run_id in run_ids:
        assert (tmp_path / "markers" / run_id).read_text() == f"{run_id}\n"


async def test_a_replica_that_keeps_dying_ends_the_parent_with_one_line(
    settings: Settings, js: JetStreamContext
) -> None:
    """Replica 1's health port is taken, so it exits at every start: restarted up to the limit, then the parent
    stops the other replica too and says which replica and how it ended, in one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] - 1
        proc = subprocess.Popen(
            [*GXWF, "handlers", "run", "--only", "jobs", "--replicas", "2", "--health-port", str(port)],
            env={**handler_env(settings), "GXWF_REPLICA_RESTART_LIMIT": "2"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = await asyncio.to_thread(proc.communicate, timeout=90)
    assert proc.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert last == "gxwf: error: handler replica 1 exited with code 2 3 times within 120s; not restarted again", err
    assert "Traceback" not in err
