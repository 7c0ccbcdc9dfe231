"""The checks of `gxwf chaos` catch what they are for: a run executed twice, a run lost, a run stuck, a result
published twice and a dead letter, each named with why; a clean run passes. Against the real store and streams."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from gxwf.chaos.checks import DEAD_LETTER, DOUBLED, LOST, STUCK, Checker
from gxwf.chaos.report import Report
from schemas.run import RunDocument


@pytest.fixture
async def store(stack: StackEndpoints) -> AsyncIterator[MongoStateStore]:
    mongo = MongoStateStore.connect(stack.mongo, f"chaos_checks_{uuid.uuid4().hex[:8]}")
    yield mongo
    await mongo.close()


async def _run(store: MongoStateStore, run_id: str, states: list[str]) -> None:
    await store.create(RunDocument(id=run_id, state="queued", consumer_id="c", asset_id="a"), event_id=f"{run_id}-0")
    for i, state in enumerate(states, 1):
        await store.transition(RunDocument, run_id, state, event_id=f"{run_id}-{i}")


async def _publish(nats_url: str, subject: str, body: dict[str, object]) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, json.dumps(body).encode())
    finally:
        await nc.close()


async def _streams(nats_url: str) -> None:
    from events.streams import ensure_streams

    nc = await nats.connect(nats_url)
    try:
        await ensure_streams(nc.jetstream())
    finally:
        await nc.close()


def _mark(markers: Path, run_id: str, times: int) -> None:
    markers.mkdir(exist_ok=True)
    (markers / run_id).write_text(f"{run_id}\n" * times)


async def test_the_checks_name_runs_done_twice_lost_and_stuck(
    stack: StackEndpoints, store: MongoStateStore, tmp_path: Path
) -> None:
    await _streams(stack.nats)
    tag = uuid.uuid4().hex[:8]
    ok, twice, gone, stuck, unasked = (f"run-{tag}-{name}" for name in ("ok", "twice", "gone", "stuck", "unasked"))
    markers = tmp_path / "markers"
    done = ["pending", "running", "succeeded"]
    for run_id in (ok, twice):
        await _run(store, run_id, done)
    await _run(store, stuck, ["pending"])
    # The tampering: a second execution's line, a run whose state the store no longer has, one nobody asked for.
    _mark(markers, ok, 1)
    _mark(markers, twice, 2)
    _mark(markers, unasked, 1)
    for run_id in (ok, twice, twice):
        await _publish(stack.nats, "wf.result.published", {"id": str(uuid.uuid4()), "data": {"run_id": run_id}})

    checker = Checker(store, stack.nats, tmp_path, markers)
    await checker.runs([ok, twice, gone, stuck])
    found: dict[tuple[str, str], str] = {}
    for f in checker.findings.items:
        found[(f.category, f.about)] = f"{found.get((f.category, f.about), '')} {f.why}"

    assert not [about for (_, about) in found if about == ok]
    assert "executed 2 times" in found[(DOUBLED, twice)]
    assert "2 wf.result.published" in found[(DOUBLED, twice)]
    assert "unknown to the store" in found[(LOST, gone)]
    assert "still pending" in found[(STUCK, stuck)]
    assert (DOUBLED, unasked) in found
    report = Report(seed=1, options={}, findings=checker.findings, runs=4)
    assert (report.lost, report.doubled, report.stuck) == (1, 2, 1)
    assert report.failed
    assert report.line().startswith("lost=1 doubled=2 stuck=1 dead_letters=")


async def test_a_dead_letter_is_reported_with_its_error(
    stack: StackEndpoints, store: MongoStateStore, tmp_path: Path
) -> None:
    await _streams(stack.nats)
    event_id = f"ev-{uuid.uuid4()}"
    letter = {
        "original_subject": "wf.run.requested",
        "original": {"id": event_id},
        "handler": "jobs-run-requested",
        "error": {"type": "ServerSelectionTimeoutError", "message": "store down"},
        "delivery_count": 5,
    }
    await _publish(stack.nats, "dlq.wf.run.requested", letter)

    checker = Checker(store, stack.nats, tmp_path, tmp_path / "markers")
    await checker.dead_letters()

    (mine,) = [f for f in checker.findings.items if event_id in f.about]
    assert mine.category == DEAD_LETTER
    assert mine.why == "jobs-run-requested after 5 deliveries: ServerSelectionTimeoutError: store down"


async def test_a_run_left_on_the_machine_is_found(
    store: MongoStateStore, stack: StackEndpoints, tmp_path: Path
) -> None:
    attempt = tmp_path / "runs" / "r-left" / "attempts" / "1"
    attempt.mkdir(parents=True)
    left = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (attempt / "pgid").write_text(str(left.pid))
        checker = Checker(store, stack.nats, tmp_path, tmp_path / "markers")

        checker.leftovers()

        (found,) = checker.findings.items
        assert (found.category, found.about) == (STUCK, "run directory r-left")
        assert found.why == f"processes still running (groups {left.pid})"
    finally:
        left.kill()
        left.wait()
