"""Run documents re-derived from the facts on the bus (handlers.jobs.rebuild), in memory: a store that lost
everything, one that lost its last writes, and the start handler waiting for an admission its store lost."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from adapters.memory_store import MemoryStateStore
from events import subjects as s
from events.envelope import Envelope
from events.payloads.run import RetryPolicy
from handlers.jobs.rebuild import Placement, rebuild_runs
from handlers.jobs.start import RunNotAdmittedYet, on_run_pending
from handlers.results.publish import RunNotEndedYet
from handlers.results.publish import on_run_succeeded as results_on_run_succeeded
from handlers.results.rebuild import rebuild_results
from inprocess.system import InProcessSystem
from schemas.provisioning import ResultDocument
from schemas.run import RunDocument, RunState
from tests.fast.conftest import request_run

PLACEMENT = Placement(backend="fake", site="local")


def summary(doc: RunDocument | None) -> tuple[Any, ...]:
    assert doc is not None
    return (doc.state, doc.attempt, doc.exit_code, doc.site, [(h.from_, h.to, h.event_id) for h in doc.history])


async def finished_runs(system: InProcessSystem) -> list[str]:
    await request_run(system, "ok")
    system.compute.finish("ok", 0)
    await request_run(system, "retried", retry=RetryPolicy(limit=1, exit_codes=[7], backoff_seconds=0))
    system.compute.finish("retried", 7)
    await system.bus.settle()
    system.compute.finish("retried", 0)
    await request_run(system, "bad")
    system.compute.finish("bad", 2)
    await request_run(system, "still-running")
    await system.bus.settle()
    return ["ok", "retried", "bad", "still-running"]


@pytest.mark.parametrize("system", [False], indirect=True)
async def test_an_empty_store_gets_every_run_back_as_the_handlers_left_it(system: InProcessSystem) -> None:
    run_ids = await finished_runs(system)
    empty = MemoryStateStore()
    ctx = dataclasses.replace(system.ctx, store=empty, events=_Refuses())

    report = await rebuild_runs(system.bus.of("wf.run.>"), ctx, PLACEMENT)

    assert (report.runs, report.created, report.unresolved) == (4, 4, [])
    for run_id in run_ids:
        assert summary(await empty.get(RunDocument, run_id)) == summary(await system.store.get(RunDocument, run_id))
    retried = await empty.get(RunDocument, "retried")
    assert retried is not None and retried.attempt == 2 and retried.state == RunState.SUCCEEDED
    again = await rebuild_runs(system.bus.of("wf.run.>"), ctx, PLACEMENT)
    assert not again.changed and again.runs == 4

    results = await rebuild_results(system.bus.of("wf.result.>"), empty)
    assert (results.results, results.created) == (3, 3)
    for run_id in ("ok", "retried", "bad"):
        original, rebuilt = await system.store.get(ResultDocument, run_id), await empty.get(ResultDocument, run_id)
        assert original is not None and rebuilt is not None
        assert rebuilt.state == original.state == "published"
        assert [(h.to, h.event_id) for h in rebuilt.history] == [(h.to, h.event_id) for h in original.history]
        assert (rebuilt.manifest_key, rebuilt.log_key) == (original.manifest_key, original.log_key)
        # The in-memory object store leaves outputs untyped; S3 types them by name, as the rebuild does.
        untyped = [{k: v for k, v in f.items() if k != "content_type"} for f in rebuilt.files]
        assert untyped == [{k: v for k, v in f.items() if k != "content_type"} for f in original.files]
    twice = await rebuild_results(system.bus.of("wf.result.>"), empty)
    assert (twice.created, twice.transitions) == (0, 0)


@pytest.mark.parametrize("system", [False], indirect=True)
async def test_a_store_that_lost_its_last_writes_is_brought_forward(system: InProcessSystem) -> None:
    await finished_runs(system)
    facts = system.bus.of("wf.run.>")
    # What the store held before the last transitions of "ok": created, admitted, nothing after.
    behind = MemoryStateStore()
    ok = await system.store.get(RunDocument, "ok")
    assert ok is not None
    queued = ok.model_copy(update={"state": RunState.QUEUED, "history": [], "announced": False})
    await behind.create(queued, event_id=ok.history[0].event_id)
    await behind.transition(RunDocument, "ok", RunState.PENDING, event_id=ok.history[1].event_id)
    ctx = dataclasses.replace(system.ctx, store=behind, events=_Refuses())

    report = await rebuild_runs(facts, ctx, PLACEMENT)

    brought = await behind.get(RunDocument, "ok")
    assert summary(brought) == summary(ok)
    assert brought is not None and brought.announced  # its wf.run.queued is out: the flag it lost is set again
    assert (report.created, report.announced) == (3, 1)


@pytest.mark.parametrize("system", [False], indirect=True)
async def test_the_start_handler_waits_for_an_admission_its_store_lost(system: InProcessSystem) -> None:
    await request_run(system, "lost")
    pending = next(e for e in system.bus.of(s.RUN_PENDING) if e.data.run_id == "lost")
    behind = MemoryStateStore()
    ctx = dataclasses.replace(system.ctx, store=behind)

    with pytest.raises(RunNotAdmittedYet):
        await on_run_pending(pending, ctx)  # the document is gone altogether
    doc = await system.store.get(RunDocument, "lost")
    assert doc is not None
    await behind.create(
        doc.model_copy(update={"state": RunState.QUEUED, "history": []}), event_id=doc.history[0].event_id
    )
    with pytest.raises(RunNotAdmittedYet):
        await on_run_pending(pending, ctx)  # still queued: the admission is what was lost
    starts = list(system.compute.starts)
    await rebuild_runs(system.bus.of("wf.run.>"), dataclasses.replace(ctx, events=_Refuses()), PLACEMENT)
    await on_run_pending(pending, ctx)  # brought forward: a no-op now (it runs already), no second start
    assert system.compute.starts == starts


class _Refuses:
    async def publish(self, event: Envelope[Any]) -> None:
        raise AssertionError(f"the rebuild published {event.type}")


@pytest.mark.parametrize("system", [False], indirect=True)
async def test_the_results_publisher_waits_for_a_run_its_store_lost(system: InProcessSystem) -> None:
    await request_run(system, "gone")
    system.compute.finish("gone", 0)
    await system.bus.settle()
    (end,) = [e for e in system.bus.of(s.RUN_SUCCEEDED) if e.data.run_id == "gone"]
    behind = MemoryStateStore()

    with pytest.raises(RunNotEndedYet):
        await results_on_run_succeeded(end, dataclasses.replace(system.ctx, store=behind))
