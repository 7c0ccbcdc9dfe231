"""A run's life in memory: requested -> queued -> pending -> running -> succeeded, failed or timed out; stop;
the retry policy; facts out of order."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from events import subjects as s
from events.envelope import derived_id, new_event
from events.payloads.run import RetryPolicy, RunRunning, RunSucceeded
from inprocess.system import InProcessSystem
from schemas.provisioning import ResultDocument
from schemas.run import RunDocument
from tests.fast.conftest import TENANT, publish, request_run, states, stop_run, types

STARTED = [s.RUN_REQUESTED, s.RUN_QUEUED, s.RUN_PENDING, s.RUN_RUNNING]


async def test_a_run_goes_from_requested_to_succeeded_with_its_results(system: InProcessSystem) -> None:
    await request_run(system, "r-1")
    assert types(system) == STARTED
    assert await states(system, RunDocument, "r-1") == ["queued", "pending", "running"]

    system.compute.finish("r-1", 0)
    await system.bus.settle()

    assert await states(system, RunDocument, "r-1") == ["queued", "pending", "running", "succeeded"]
    assert types(system) == [*STARTED, s.RUN_SUCCEEDED, s.RESULT_PUBLISHED]
    assert system.compute.starts == [("r-1", 1)]
    result = await system.store.get(ResultDocument, "r-1")
    assert result is not None and result.state == "published" and [f["name"] for f in result.files] == ["result.txt"]
    keys = {o.key for o in await system.objects.list(f"results/{quote(TENANT, safe='')}/r-1/")}
    assert {k.rsplit("/", 1)[-1] for k in keys} == {"result.txt", "log.txt", "manifest.json"}
    assert system.bus.dead_letters == []


async def test_a_failing_workload_fails_the_run_and_still_publishes_its_log(system: InProcessSystem) -> None:
    await request_run(system, "r-2")
    system.compute.finish("r-2", 3)
    await system.bus.settle()

    run = await system.store.get(RunDocument, "r-2")
    assert run is not None and [h.to for h in run.history][-1] == "failed" and run.exit_code == 3
    assert types(system)[-2:] == [s.RUN_FAILED, s.RESULT_PUBLISHED]
    result = await system.store.get(ResultDocument, "r-2")
    assert result is not None and result.files == [] and result.state == "published"


async def test_a_run_past_its_time_limit_is_stopped_and_timed_out(system: InProcessSystem) -> None:
    await request_run(system, "r-3", timeout=60)
    system.store.backdate(RunDocument, "r-3", 61)
    await system.bus.settle()

    assert await states(system, RunDocument, "r-3") == ["queued", "pending", "running", "timed_out"]
    assert "r-3" in system.compute.stops
    assert types(system)[-2:] == [s.RUN_TIMED_OUT, s.RESULT_PUBLISHED]


async def test_a_stopped_run_ends_stopped_not_failed(system: InProcessSystem) -> None:
    await request_run(system, "r-4")
    await stop_run(system, "r-4")

    run = await system.store.get(RunDocument, "r-4")
    assert run is not None and [h.to for h in run.history] == ["queued", "pending", "running", "stopped"]
    assert run.stop_requested == "enough" and "r-4" in system.compute.stops
    assert types(system)[-2:] == [s.RUN_STOPPED, s.RESULT_PUBLISHED]
    assert len(system.bus.of(s.RUN_FAILED)) == 0


async def test_another_consumers_stop_is_ignored(system: InProcessSystem) -> None:
    await request_run(system, "r-5")
    await stop_run(system, "r-5", consumer="did:web:someone-else")
    assert await states(system, RunDocument, "r-5") == ["queued", "pending", "running"]
    assert system.compute.stops == []


async def test_a_covered_failure_is_retried_as_a_new_attempt(system: InProcessSystem) -> None:
    await request_run(system, "r-6", retry=RetryPolicy(limit=1, backoff_seconds=0, on=["vanished"]))
    system.compute.vanish("r-6")
    await system.bus.settle()
    run = await system.store.get(RunDocument, "r-6")
    assert run is not None and run.attempt == 2 and run.state == "running"
    assert system.compute.starts == [("r-6", 1), ("r-6", 2)]

    system.compute.finish("r-6", 0)
    await system.bus.settle()
    assert await states(system, RunDocument, "r-6") == [
        "queued",
        "pending",
        "running",
        "queued",
        "pending",
        "running",
        "succeeded",
    ]
    assert [e.type for e in system.bus.of("wf.run.*")].count(s.RUN_PENDING) == 2


async def test_retries_end_when_the_policy_is_spent(system: InProcessSystem) -> None:
    await request_run(system, "r-7", retry=RetryPolicy(limit=1, backoff_seconds=0, on=["vanished"]))
    system.compute.vanish("r-7")
    await system.bus.settle()
    system.compute.vanish("r-7")
    await system.bus.settle()

    run = await system.store.get(RunDocument, "r-7")
    assert run is not None and run.state == "failed" and run.attempt == 2
    assert len(system.bus.of(s.RUN_RETRYING)) == 1


async def test_a_failure_the_policy_does_not_cover_is_not_retried(system: InProcessSystem) -> None:
    await request_run(system, "r-8", retry=RetryPolicy(limit=3, backoff_seconds=0, on=["vanished"]))
    system.compute.finish("r-8", 1)
    await system.bus.settle()
    run = await system.store.get(RunDocument, "r-8")
    assert run is not None and run.state == "failed" and run.attempt == 1


async def test_a_success_reported_for_a_queued_run_is_refused(system: InProcessSystem) -> None:
    # No dispatcher pass: the run stays queued while the forged facts arrive.
    await request_run(system, "r-9", settle=False)
    before = await system.store.get(RunDocument, "r-9")
    assert before is not None and before.state == "queued"

    for subject, fact in (
        (s.RUN_SUCCEEDED, RunSucceeded(run_id="r-9", consumer_id=TENANT, duration_seconds=1)),
        (s.RUN_RUNNING, RunRunning(run_id="r-9", consumer_id=TENANT, backend="fake", handle="forged")),
    ):
        await system.bus.publish(new_event(subject, fact))
    await system.bus.run_until_quiet()
    assert await system.store.get(RunDocument, "r-9") == before
    assert system.compute.starts == []


async def test_a_fact_for_an_earlier_state_after_the_end_is_refused(system: InProcessSystem) -> None:
    await request_run(system, "r-10")
    system.compute.finish("r-10", 0)
    await system.bus.settle()
    done = await system.store.get(RunDocument, "r-10")
    # A running fact with a new id (not a redelivery): the run ended, so it is out of order.
    running = RunRunning(run_id="r-10", consumer_id=TENANT, backend="fake", handle="late")
    await publish(system, s.RUN_RUNNING, running, id_=derived_id("r-10", "late-running"))
    assert await system.store.get(RunDocument, "r-10") == done


async def test_every_run_event_redelivered_after_the_end_changes_nothing(system: InProcessSystem) -> None:
    await request_run(system, "r-11")
    system.compute.finish("r-11", 0)
    await system.bus.settle()
    run, result = await system.store.get(RunDocument, "r-11"), await system.store.get(ResultDocument, "r-11")
    stored = list(system.bus.stream)
    for event in stored:
        system.bus.redeliver(event)
    await system.bus.settle()

    assert system.bus.stream == stored
    assert await system.store.get(RunDocument, "r-11") == run
    assert await system.store.get(ResultDocument, "r-11") == result
    assert system.compute.starts == [("r-11", 1)]


async def test_a_refused_end_fact_publishes_no_result(system: InProcessSystem) -> None:
    await request_run(system, "r-12", settle=False)
    await system.bus.publish(
        new_event(s.RUN_SUCCEEDED, RunSucceeded(run_id="r-12", consumer_id=TENANT, duration_seconds=1))
    )
    await system.bus.run_until_quiet()
    assert await system.store.get(ResultDocument, "r-12") is None
    assert system.bus.of(s.RESULT_PUBLISHED) == []


async def test_a_stop_recorded_while_the_watcher_looks_ends_the_run_stopped(
    system: InProcessSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The watcher lists running runs, then asks the backend about each. A stop recorded and carried out between
    # the two (the stop handler records it, then kills) shows the workload gone with a kill's exit status: the
    # run must end stopped, not failed, or the stop handler's report is refused and the consumer sees a failure.
    from handlers.jobs.watch import reconcile_once

    await request_run(system, "r-race")
    status = system.compute.status

    async def stop_in_between(run_id: str, *, attempt: int = 1) -> object:
        await system.store.set_fields(RunDocument, run_id, {"stop_requested": "enough"})
        system.compute.finish(run_id, 143)
        return await status(run_id, attempt=attempt)

    monkeypatch.setattr(system.compute, "status", stop_in_between)
    assert await reconcile_once(system.ctx) == 1
    await system.bus.settle()

    assert await states(system, RunDocument, "r-race") == ["queued", "pending", "running", "stopped"]
    assert system.bus.of(s.RUN_FAILED) == []


async def test_an_end_fact_ahead_of_the_tracker_waits_in_place_then_publishes(system: InProcessSystem) -> None:
    # The results handler sees the end before the tracker applied it. Given a moment to wait in place (as the
    # runtime gives it), it publishes once the run has ended, without handing the event back to the bus.
    import asyncio
    import dataclasses

    from handlers.results.publish import RunNotEndedYet, on_run_succeeded

    await request_run(system, "r-ahead")
    system.compute.finish("r-ahead", 0)
    fact = new_event(
        s.RUN_SUCCEEDED,
        RunSucceeded(run_id="r-ahead", consumer_id=TENANT, duration_seconds=1),
        id_=derived_id("r-ahead", "ahead"),
    )
    with pytest.raises(RunNotEndedYet):  # no wait: straight back to the bus
        await on_run_succeeded(fact, system.ctx)

    async def tracker_applies_later() -> None:
        await asyncio.sleep(0.1)
        await system.store.transition(RunDocument, "r-ahead", "succeeded", event_id=fact.id)

    applying = asyncio.create_task(tracker_applies_later())
    await on_run_succeeded(fact, dataclasses.replace(system.ctx, ahead_wait=5.0))
    await applying
    result = await system.store.get(ResultDocument, "r-ahead")
    assert result is not None and result.state == "published"
