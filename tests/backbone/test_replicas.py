"""`gxwf handlers run --replicas N`: replica processes sharing the durable consumers, restarted when they die."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from events.subjects import DLQ_STREAM
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, stream_events
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
    assert last == "gxwf: error: handler replica 1 exited with code 2; restarted 2 times within 120s, not again", err
    assert "Traceback" not in err, err


def free_ports(count: int) -> int:
    """The first of `count` consecutive free ports on loopback."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise AssertionError("no consecutive free ports")


def metric(text: str, name: str, replica: str) -> float:
    """The sum of `name` over the label sets of one replica."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") and f'replica="{replica}"' in line
    )


async def test_a_burst_is_shared_by_the_replicas(
    settings: Settings, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> None:
    port = free_ports(2)
    replicas = await start_replicas(settings, 2, "--health-port", str(port), groups=("jobs",))
    run_ids = [f"share-{n}" for n in range(60)]
    try:
        await request_runs(js, tmp_path / "markers", run_ids)
        await eventually(lambda: all_succeeded(store, len(run_ids)), timeout=120)
        async with httpx.AsyncClient() as http:
            pages = [(await http.get(f"http://127.0.0.1:{port + n}/metrics")).text for n in (0, 1)]
    finally:
        assert await replicas.stop() == 0
    # Each replica's /metrics counts its own work under its replica label.
    for n, page in enumerate(pages):
        assert metric(page, "gxwf_replica_events_handled_total", str(n)) > 0, page
        assert metric(page, "gxwf_replica_loop_passes_total", str(n)) > 0, page
    # The same figures outlive the processes in replica_stats: both handled events, together every run's.
    stats = [doc async for doc in store.db["replica_stats"].find({})]
    assert sorted(doc["replica"] for doc in stats) == ["0", "1"] and all(doc["stopped"] for doc in stats)
    assert all(doc["events_handled"] > 0 for doc in stats), stats
    # wf.run.requested, .pending, .running and the end: at least four events handled per run, across both.
    assert sum(doc["events_handled"] for doc in stats) >= 4 * len(run_ids)


ROLLING_RUNS = int(os.environ.get("GXWF_ROLLING_RESTART_RUNS", "120"))


async def test_a_rolling_restart_of_every_replica_during_a_burst_loses_nothing(
    settings: Settings, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> None:
    """Every replica in turn gets SIGTERM mid-burst and is restarted by the parent: every run ends once, in one
    terminal state, executed once, and nothing is dead-lettered. GXWF_ROLLING_RESTART_RUNS=500 for the long one."""
    port = free_ports(2)
    replicas = await start_replicas(settings, 2, "--health-port", str(port))
    run_ids = [f"roll-{n}" for n in range(ROLLING_RUNS)]
    markers = tmp_path / "markers"
    try:
        burst = asyncio.ensure_future(request_runs(js, markers, run_ids))
        async with httpx.AsyncClient() as http:
            for index in range(2):
                # The first after a fifth of the runs ended, the second after two fifths: mid-burst.
                share = (index + 1) * ROLLING_RUNS // 5
                await eventually(functools.partial(succeeded_some, store, share), timeout=120)
                old = replicas.pids()[index]
                os.kill(old, signal.SIGTERM)

                async def back(index: int = index, old: int = old) -> bool:
                    pid = replicas.pids()[index]
                    if pid == old or alive(old):
                        return False
                    with contextlib.suppress(httpx.HTTPError):
                        return (await http.get(f"http://127.0.0.1:{port + index}/readyz")).status_code == 200
                    return False

                await eventually(back, timeout=60)
        await burst
        await eventually(lambda: all_ended(store, len(run_ids)), timeout=60 + ROLLING_RUNS)
        record = replicas.record()["replicas"]
    finally:
        assert await replicas.stop() == 0
    assert [replica["restarts"] for replica in record] == [1, 1]
    terminal = RunDocument.machine.terminal
    for run_id in run_ids:
        doc = await store.get(RunDocument, run_id)
        assert doc is not None and doc.state == RunState.SUCCEEDED, doc
        assert [h.to for h in doc.history if h.to in terminal] == [RunState.SUCCEEDED], doc.history
        assert (markers / run_id).read_text() == f"{run_id}\n", run_id
    ends = [e["subject"] for e in await stream_events(js, s.RUN_SUCCEEDED)]
    assert sorted(ends) == sorted(run_ids)
    assert (await js.stream_info(DLQ_STREAM)).state.messages == 0


async def succeeded_some(store: MongoStateStore, count: int) -> bool:
    return await store.count(RunDocument, states=[RunState.SUCCEEDED]) >= count


async def all_ended(store: MongoStateStore, count: int) -> bool:
    return await store.count(RunDocument, states=list(RunDocument.machine.terminal)) == count
