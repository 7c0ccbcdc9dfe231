"""The thin slice: wf.run.requested -> local process -> pending -> running -> succeeded|failed, as events."""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec, StagedInput
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, stream_events


def request(run_id: str, command: list[str], **spec: float) -> RunRequested:
    return RunRequested(run_id=run_id, consumer_id="c-1", asset_id="shell", spec=RunSpec(command=command, **spec))


async def test_a_successful_run_walks_pending_running_succeeded_and_says_so(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    assert service.bus is not None
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, request("r-ok", ["/bin/sh", "-c", f"echo hello >> {marker}; echo to-log"]))
    )
    doc = await eventually(lambda: finished(store, "r-ok"))

    assert doc.state == RunState.SUCCEEDED
    assert [(h.from_, h.to) for h in doc.history] == [
        (None, "queued"),
        ("queued", "pending"),
        ("pending", "running"),
        ("running", "succeeded"),
    ]
    assert doc.exit_code == 0
    assert marker.read_text() == "hello\n"
    assert "to-log" in service.local_compute.log_path("r-ok").read_text()
    types = [e["type"] for e in await stream_events(js, "wf.run.>")]
    assert types == [s.RUN_REQUESTED, s.RUN_QUEUED, s.RUN_PENDING, s.RUN_RUNNING, s.RUN_SUCCEEDED]
    # Each stored transition names the event that caused it, so a timeline needs no replay.
    facts = {e["type"]: e["id"] for e in await stream_events(js, "wf.run.>")}
    assert doc.history[0].event_id == facts[s.RUN_REQUESTED]
    assert doc.history[1].event_id == facts[s.RUN_PENDING]
    assert doc.history[2].event_id == facts[s.RUN_RUNNING]
    assert doc.history[3].event_id == facts[s.RUN_SUCCEEDED]


async def test_a_failing_command_ends_failed_with_its_exit_status(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    assert service.bus is not None
    await service.bus.publish(new_event(s.RUN_REQUESTED, request("r-bad", ["/bin/sh", "-c", "exit 7"])))
    doc = await eventually(lambda: finished(store, "r-bad"))

    assert doc.state == RunState.FAILED
    assert doc.exit_code == 7
    assert doc.reason == "exit status 7"
    failed = [e for e in await stream_events(js, s.RUN_FAILED)]
    assert [e["data"]["exit_code"] for e in failed] == [7]


async def test_a_run_over_its_time_limit_is_killed_and_timed_out(
    service: HandlerService, store: MongoStateStore, tmp_path: Path
) -> None:
    marker = tmp_path / "after-sleep"
    assert service.bus is not None
    await service.bus.publish(
        new_event(
            s.RUN_REQUESTED,
            request("r-slow", ["/bin/sh", "-c", f"sleep 30; touch {marker}"], timeout_seconds=1.0),
        )
    )
    doc = await eventually(lambda: finished(store, "r-slow"))

    assert doc.state == RunState.TIMED_OUT
    status = await service.local_compute.status("r-slow")
    assert status.phase != "running"
    assert not marker.exists()


async def test_a_workload_that_vanishes_is_failed_not_left_running(
    service: HandlerService, store: MongoStateStore
) -> None:
    assert service.bus is not None
    await service.bus.publish(new_event(s.RUN_REQUESTED, request("r-lost", ["/bin/sh", "-c", "sleep 30"])))
    await eventually(lambda: _state_is(store, "r-lost", RunState.RUNNING))
    # Kill the workload behind the backend's back: no exit status is ever written.
    import os
    import signal

    pgid = int((service.local_compute.attempt_dir("r-lost", 1) / "pgid").read_text())
    os.killpg(pgid, signal.SIGKILL)
    doc = await eventually(lambda: finished(store, "r-lost"))

    assert doc.state == RunState.FAILED
    assert doc.reason is not None and "gone" in doc.reason


async def _state_is(store: MongoStateStore, run_id: str, state: RunState) -> bool:
    doc = await store.get(RunDocument, run_id)
    return doc is not None and doc.state == state


async def test_limits_hold_and_a_late_consumer_is_not_starved(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    limited = settings.model_copy(update={"runs_per_consumer": 2, "runs_per_site": 3})
    svc = HandlerService(limited, endpoints)
    await svc.start()
    try:
        assert svc.bus is not None
        for i in range(6):
            await svc.bus.publish(new_event(s.RUN_REQUESTED, request(f"a-{i}", ["/bin/sh", "-c", "sleep 0.4"])))
        late = RunRequested(run_id="b-0", consumer_id="c-2", asset_id="shell", spec=RunSpec(command=["true"]))
        await svc.bus.publish(new_event(s.RUN_REQUESTED, late))
        ids = [f"a-{i}" for i in range(6)] + ["b-0"]

        async def all_done() -> list[RunDocument] | None:
            docs = [await finished(store, run_id) for run_id in ids]
            return None if None in docs else [d for d in docs if d is not None]

        docs = await eventually(all_done, timeout=60)
    finally:
        await svc.stop()

    assert {d.state for d in docs} == {RunState.SUCCEEDED}
    # Replay the admissions and ends in time order: never more than 2 of c-1's runs, or 3 in all, at once.
    moments = sorted(
        (h.at, +1 if h.to == "pending" else -1, d.consumer_id)
        for d in docs
        for h in d.history
        if h.to in ("pending", "succeeded")
    )
    active: dict[str, int] = {"c-1": 0, "c-2": 0}
    for _, change, owner in moments:
        active[owner] += change
        assert active["c-1"] <= 2 and sum(active.values()) <= 3
    admitted = {d.id: next(h.at for h in d.history if h.to == "pending") for d in docs}
    # The late consumer's run goes ahead of c-1's queue instead of waiting for all of it.
    assert admitted["b-0"] < admitted["a-5"]


async def test_a_memory_hungry_run_fails_within_its_memory_limit(
    service: HandlerService, store: MongoStateStore
) -> None:
    hungry = ["python3", "-c", "x = bytearray(400 * 1024 * 1024); print('allocated')"]
    assert service.bus is not None
    await service.bus.publish(new_event(s.RUN_REQUESTED, request("mem-capped", hungry, memory_mb=128)))
    await service.bus.publish(new_event(s.RUN_REQUESTED, request("mem-free", hungry)))
    capped = await eventually(lambda: finished(store, "mem-capped"))
    free = await eventually(lambda: finished(store, "mem-free"))

    assert capped.state == RunState.FAILED
    assert "MemoryError" in service.local_compute.log_path("mem-capped").read_text()
    assert free.state == RunState.SUCCEEDED


async def test_a_run_that_never_starts_times_out_in_pending(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    # The start handler dies on every try (its event ends in the dead-letter stream); the run must not wait forever.
    broken = settings.model_copy(update={"fault_points": "jobs.before_start=raise", "max_attempts": 1})
    svc = HandlerService(broken, endpoints)
    await svc.start()
    try:
        assert svc.bus is not None
        await svc.bus.publish(new_event(s.RUN_REQUESTED, request("never", ["true"], pending_timeout_seconds=1.0)))
        doc = await eventually(lambda: finished(store, "never"))
    finally:
        await svc.stop()
    assert doc.state == RunState.TIMED_OUT
    assert doc.reason == "pending longer than 1s"
    letters = await stream_events(js, "dlq.>")
    (letter,) = [letter for letter in letters if letter["handler"] == "jobs-start-pending-local"]
    assert letter["original_subject"] == s.RUN_PENDING
    # With one try per delivery, the results handler may see the end fact before the tracker applied it: that
    # one try (ahead of its state) is dead-lettered too. Nothing else is.
    for other in letters:
        if other is not letter:
            assert other["original_subject"] == s.RUN_TIMED_OUT, other
            assert other["error"]["type"] == "RunNotEndedYet", other


async def test_a_run_that_cannot_start_fails_at_once_with_the_reason(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    # An input that was never uploaded: no retry can stage it, so the run fails now instead of dead-lettering
    # its start and staying pending until a time limit.
    missing = StagedInput(name="route", kind="file", input_id="in-gone", prefix="inputs/c-1/in-gone/", path="r.csv")
    spec = RunSpec(command=["/bin/sh", "-c", "cat r.csv"], inputs=[missing])
    assert service.bus is not None
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id="r-nostart", consumer_id="c-1", asset_id="shell", spec=spec))
    )
    doc = await eventually(lambda: finished(store, "r-nostart"))

    assert doc.state == RunState.FAILED
    assert doc.reason == "could not start: input route: a file input is one uploaded object, found 0"
    assert [(h.from_, h.to) for h in doc.history][-1] == ("pending", "failed")
    failed = await stream_events(js, s.RUN_FAILED)
    assert [e["data"]["reason"] for e in failed] == [doc.reason]
    assert await stream_events(js, "dlq.>") == []
