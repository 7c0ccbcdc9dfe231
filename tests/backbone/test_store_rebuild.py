"""The store loses acknowledged writes (a SIGKILL, an empty database): `gxwf store rebuild` brings every run back
to what the facts in stream WF say, and the runs finish, each once."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from events.streams import StreamSettings, ensure_streams
from events.subjects import STREAM
from gxwf.bench_store_crash import SETTINGS, StoreProcess
from gxwf.settings import Settings
from schemas.provisioning import ResultDocument
from schemas.run import RunDocument
from tests.backbone.conftest import eventually, quiet, stream_events

GXWF = [sys.executable, "-m", "gxwf"]
KEYS = ("created", "announced", "transitions")
TERMINAL_FACTS = {
    s.RUN_SUCCEEDED: "succeeded",
    s.RUN_FAILED: "failed",
    s.RUN_STOPPED: "stopped",
    s.RUN_TIMED_OUT: "timed_out",
}


def gxwf_env(settings: Settings, mongo_url: str, database: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GXWF_NATS_URL=str(settings.nats_url),
        GXWF_MONGO_URL=mongo_url,
        GXWF_S3_ENDPOINT=str(settings.s3_endpoint),
        GXWF_S3_ACCESS_KEY=settings.s3_access_key or "",
        GXWF_S3_SECRET_KEY=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else "",
        GXWF_MONGO_DATABASE=database or settings.mongo_database,
        GXWF_STATE_DIR=str(settings.state_dir),
        GXWF_ACK_WAIT_SECONDS="5",
        GXWF_WATCH_INTERVAL_SECONDS="0.2",
        GXWF_DISPATCH_INTERVAL_SECONDS="0.1",
        GXWF_RUNS_PER_SITE="8",
        GXWF_RUNS_PER_CONSUMER="8",
    )
    return env


async def start_handlers(env: dict[str, str], *groups: str) -> subprocess.Popen[bytes]:
    only = [arg for group in groups or ("jobs",) for arg in ("--only", group)]
    proc = subprocess.Popen(
        [*GXWF, "handlers", "run", *only], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=30)
    assert line.strip() == b"handlers ready", line
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def rebuild(env: dict[str, str]) -> str:
    done = await asyncio.to_thread(
        subprocess.run, [*GXWF, "store", "rebuild"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout.strip()


async def request_runs(js: JetStreamContext, markers: Path, count: int, prefix: str) -> list[str]:
    markers.mkdir(exist_ok=True)
    run_ids = [f"{prefix}-{n}" for n in range(count)]
    for run_id in run_ids:
        event = new_event(
            s.RUN_REQUESTED,
            RunRequested(
                run_id=run_id,
                consumer_id=f"c-{hash(run_id) % 3}",
                asset_id="shell",
                spec=RunSpec(command=["/bin/sh", "-c", f"echo once >> {markers / run_id}; sleep 0.2"]),
            ),
            subject=run_id,
        )
        await js.publish(s.RUN_REQUESTED, event.model_dump_json().encode(), headers={"Nats-Msg-Id": event.id})
    return run_ids


async def facts_by_run(js: JetStreamContext) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in await stream_events(js, "wf.run.>", wait=False):
        found.setdefault(event["data"]["run_id"], []).append(event)
    return found


async def assert_runs_agree_with_facts(js: JetStreamContext, store: MongoStateStore, markers: Path) -> int:
    """Every accepted run: one terminal fact, its document in that state with every fact applied, run once."""
    facts = await facts_by_run(js)
    accepted = [run_id for run_id, events in facts.items() if any(e["type"] == s.RUN_QUEUED for e in events)]
    for run_id in accepted:
        ends = [e for e in facts[run_id] if e["type"] in TERMINAL_FACTS]
        assert len(ends) == 1, (run_id, [e["type"] for e in facts[run_id]])
        doc = await store.get(RunDocument, run_id)
        assert doc is not None, run_id
        assert doc.state == TERMINAL_FACTS[ends[0]["type"]], (run_id, doc.state)
        recorded = {h.event_id for h in doc.history}
        transitions = [e for e in facts[run_id] if e["type"] not in (s.RUN_REQUESTED, s.RUN_QUEUED)]
        assert {e["id"] for e in transitions} <= recorded, (run_id, [h.to for h in doc.history])
        if ends[0]["type"] == s.RUN_SUCCEEDED:
            assert (markers / run_id).read_text() == "once\n", run_id
    return len(accepted)


async def until(
    check: Callable[[], Awaitable[bool]], store: MongoStateStore, js: JetStreamContext, timeout: float
) -> None:
    """`eventually`, saying where the runs and results are when it fails."""
    try:
        await eventually(check, timeout=timeout, interval=0.5)
    except AssertionError:
        runs = Counter(doc.state for doc in await store.find(RunDocument, limit=10_000))
        results = Counter(doc.state for doc in await store.find(ResultDocument, limit=10_000))
        letters = [str(letter)[:300] for letter in await stream_events(js, "dlq.>", wait=False)]
        where = f"runs {dict(runs)}, results {dict(results)}, dead letters {letters}"
        raise AssertionError(f"not within {timeout}s: {where}") from None


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[StoreProcess]:
    """A store of this test's own, killed and started again on the same port and data; without the embedded
    default's --sync-on-commit, so that a kill does lose acknowledged writes."""
    server = StoreProcess(tmp_path / "secantusd", SETTINGS["w=1"])
    await server.start()
    yield server
    await server.kill()


async def test_runs_converge_after_the_store_loses_acknowledged_writes_mid_burst(
    settings: Settings, js: JetStreamContext, own_store: StoreProcess, tmp_path: Path
) -> None:
    """SIGKILLed twice during a burst of runs through the real handlers; the second time it comes back on the
    data of the first kill: everything it acknowledged in between is gone, as a store that loses the last
    acknowledged writes loses them (a kill alone loses too few writes of this slow a burst to tell)."""
    env = gxwf_env(settings, own_store.url)
    markers = tmp_path / "markers"
    snapshot = tmp_path / "snapshot"
    handlers = await start_handlers(env, "jobs", "results")
    store = MongoStateStore.connect(own_store.url, settings.mongo_database)
    try:
        run_ids = await request_runs(js, markers, 40, "burst")

        def executed(count: int) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                return len(list(markers.iterdir())) >= count

            return check

        await eventually(executed(5), timeout=120)
        await own_store.kill()
        shutil.copytree(own_store.home, snapshot)
        await own_store.start()
        await eventually(executed(20), timeout=120)
        await own_store.kill()
        shutil.rmtree(own_store.home)
        shutil.copytree(snapshot, own_store.home)
        await own_store.start()

        first = await rebuild(env)
        created, announced, transitions = (int(re.search(rf"{k}=(\d+)", first)[1]) for k in KEYS)  # type: ignore[index]
        assert transitions > 0 and created + announced + transitions >= 15, first

        async def all_ended() -> bool:
            ends = await store.count(RunDocument, states=sorted(RunDocument.machine.terminal))
            return ends == len(run_ids)

        await until(all_ended, store, js, timeout=180)

        async def all_published() -> bool:
            return await store.count(ResultDocument, states=["published"]) == len(run_ids)

        await until(all_published, store, js, timeout=120)
        await quiet(js, timeout=20)
        assert await assert_runs_agree_with_facts(js, store, markers) == len(run_ids)
        published = Counter(e["data"]["run_id"] for e in await stream_events(js, s.RESULT_PUBLISHED, wait=False))
        assert published == Counter(run_ids), "one wf.result.published per run"
        assert await stream_events(js, "dlq.>", wait=False) == []
        # Every run's command ran, and once (a run that ran twice would have two lines).
        assert all((markers / run_id).read_text() == "once\n" for run_id in run_ids)
        # On a store that agrees with the facts, the rebuild changes nothing.
        again = await rebuild(env)
        assert "created=0 announced=0 transitions=0" in again, again
    finally:
        stop(handlers)
        await store.close()


async def test_rebuild_recreates_every_run_from_the_stream_into_an_empty_store(
    settings: Settings, js: JetStreamContext, own_store: StoreProcess, tmp_path: Path
) -> None:
    env = gxwf_env(settings, own_store.url)
    markers = tmp_path / "markers"
    handlers = await start_handlers(env, "jobs", "results")
    store = MongoStateStore.connect(own_store.url, settings.mongo_database)
    try:
        run_ids = await request_runs(js, markers, 6, "empty")

        async def all_published() -> bool:
            return await store.count(ResultDocument, states=["published"]) == len(run_ids)

        await until(all_published, store, js, timeout=120)
    finally:
        stop(handlers)
    originals = {run_id: await store.get(RunDocument, run_id) for run_id in run_ids}
    results = {run_id: await store.get(ResultDocument, run_id) for run_id in run_ids}

    fresh = f"{settings.mongo_database}_rebuilt"
    empty_env = gxwf_env(settings, own_store.url, database=fresh)
    report = await rebuild(empty_env)
    assert f"runs={len(run_ids)} created={len(run_ids)}" in report, report
    rebuilt_store = MongoStateStore.connect(own_store.url, fresh)
    try:
        for run_id, original in originals.items():
            rebuilt = await rebuilt_store.get(RunDocument, run_id)
            assert original is not None and rebuilt is not None
            assert rebuilt.state == original.state
            assert [(h.from_, h.to, h.event_id) for h in rebuilt.history] == [
                (h.from_, h.to, h.event_id) for h in original.history
            ]
            same = ("consumer_id", "asset_id", "spec", "parameters", "backend", "site", "attempt", "exit_code")
            assert {k: getattr(rebuilt, k) for k in same} == {k: getattr(original, k) for k in same}
            # Its results as the consumer downloads them: the same manifest, files (keys, sizes, digests, types), log.
            result, rebuilt_result = results[run_id], await rebuilt_store.get(ResultDocument, run_id)
            assert result is not None and rebuilt_result is not None
            same = ("state", "consumer_id", "manifest_key", "files", "log_key")
            assert {k: getattr(rebuilt_result, k) for k in same} == {k: getattr(result, k) for k in same}
        assert f"results={len(run_ids)} results_created={len(run_ids)}" in report, report
        # Twice changes nothing.
        second = await rebuild(empty_env)
        assert "created=0 announced=0 transitions=0" in second and "results_created=0 results_transitions=0" in second
        # Nothing was run again: each run's command ran once.
        assert Counter((markers / r).read_text() for r in run_ids) == Counter({"once\n": len(run_ids)})
    finally:
        await rebuilt_store.close()
        await store.close()


def one_line_error(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*GXWF, "store", "rebuild", *args], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    return done.stderr.strip()


def test_bad_input_is_one_line(settings: Settings, own_store: StoreProcess, tmp_path: Path) -> None:
    env = gxwf_env(settings, own_store.url)
    unreachable_nats = one_line_error(env | {"GXWF_NATS_URL": "nats://127.0.0.1:9"})
    assert unreachable_nats == "gxwf: error: store rebuild: NATS at 127.0.0.1:9 not reachable (NoServersError)"
    unreachable_store = one_line_error(env | {"GXWF_MONGO_URL": "mongodb://127.0.0.1:9/?directConnection=true"})
    assert "store rebuild: store at 127.0.0.1:9 not reachable" in unreachable_store
    nowhere = {k: v for k, v in env.items() if k not in ("GXWF_NATS_URL", "GXWF_MONGO_URL")}
    wrong_dir = one_line_error(nowhere, "--state-dir", str(tmp_path / "no-such-dir"))
    assert "no nats, mongo server known" in wrong_dir and str(tmp_path / "no-such-dir") in wrong_dir


async def test_a_bus_without_the_stream_is_one_line(
    settings: Settings, js: JetStreamContext, own_store: StoreProcess
) -> None:
    await js.delete_stream(STREAM)
    try:
        error = await asyncio.to_thread(one_line_error, gxwf_env(settings, own_store.url))
        assert error.startswith("gxwf: error: store rebuild: no stream WF on NATS at 127.0.0.1:"), error
        assert error.endswith(": nothing to rebuild from")
    finally:
        await ensure_streams(js, StreamSettings(duplicate_window_seconds=settings.duplicate_window_seconds))
