"""Fenced leases: a singleton that lost its lease (paused past it, another replica took over) makes no write.

In process: a lease taken over while the old holder still believes in it, and a lease that expires mid-pass of
the real dispatcher. Across processes: two replicas, the dispatching one paused (SIGSTOP) longer than its lease
while held mid-pass, the other takes over; resumed, the old one writes nothing more."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

import handlers.jobs.dispatch as dispatch
from adapters.fencing import FencedEvents, LeaseGuard
from adapters.local_compute import LocalProcessBackend
from adapters.mongo_fencing import MongoFencedStore
from adapters.mongo_leases import MongoLeases
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.bus import Bus
from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from handlers.context import HandlerContext
from ports.leases import Lease, LeaseLost
from schemas.names import dispatcher_lease
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, stream_events
from tests.backbone.replicas import alive, pause, resume, start_replicas
from tests.backbone.test_replicas import request_runs


def queued_run(run_id: str) -> RunDocument:
    return RunDocument(
        id=run_id, consumer_id="c-1", asset_id="shell", state=RunState.QUEUED, spec={}, site="local", backend="local"
    )


async def test_a_write_under_a_lease_another_holder_took_is_refused_in_the_store(store: MongoStateStore) -> None:
    leases = MongoLeases(store.db)
    old = LeaseGuard(leases)
    assert await old.hold("fence-test", "old", ttl_seconds=0.5) is not None
    await store.create(queued_run("r-1"), event_id="e-0")
    await asyncio.sleep(0.6)
    taken = await leases.hold("fence-test", "new", ttl_seconds=30)
    assert taken is not None and taken.epoch == 2
    # The old holder's clock says its lease still runs (a stalled clock, a margin too thin): the store says no.
    stale = old.taken["fence-test"]
    old.taken["fence-test"] = Lease(stale.name, stale.holder, stale.epoch, time.monotonic() + 60)
    fenced = MongoFencedStore(store, old)
    with pytest.raises(LeaseLost, match="another holder"):
        await fenced.transition(RunDocument, "r-1", RunState.PENDING, event_id="e-1")
    with pytest.raises(LeaseLost):
        await fenced.set_fields(RunDocument, "r-1", {"announced": False})
    doc = await store.get(RunDocument, "r-1")
    assert doc is not None and doc.state == RunState.QUEUED and len(doc.history) == 1 and doc.announced
    # The successor's writes go through, counted under its epoch.
    new = LeaseGuard(leases)
    renewed = await new.hold("fence-test", "new", ttl_seconds=30)
    assert renewed is not None and renewed.epoch == 2
    assert (await MongoFencedStore(store, new).transition(RunDocument, "r-1", RunState.PENDING, event_id="e-1")).changed
    lease_doc = await store.db["leases"].find_one({"_id": "fence-test"})
    assert lease_doc is not None and lease_doc["writes"] == {"2": 1} and lease_doc["last_seq"] == {"2": 1}
    assert lease_doc["taken_seq"] == 0 and old.refused == 2


async def test_a_lease_that_expires_mid_pass_stops_the_dispatcher_before_its_first_admission(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, monkeypatch: Any
) -> None:
    """The dispatcher takes its lease, then its reading of the queue outlasts the lease (a paused process): it
    admits nothing and announces nothing; the next holder admits every run."""
    monkeypatch.setattr(dispatch, "LEASE_SECONDS", 1.0)
    for n in range(3):
        await store.create(queued_run(f"slow-{n}"), event_id=f"q-{n}")
    bus = Bus(endpoints.nats)
    await bus.broker.connect()
    try:
        guard = LeaseGuard(MongoLeases(store.db))

        class SlowQueue(MongoFencedStore):
            async def find(self, kind: Any, **kwargs: Any) -> Any:
                if kwargs.get("states") == [RunState.QUEUED]:
                    await asyncio.sleep(1.2)
                return await super().find(kind, **kwargs)

        compute = LocalProcessBackend(settings.state_dir / "runs", site="local")
        ctx = HandlerContext(
            store=SlowQueue(store, guard), events=FencedEvents(bus, guard), compute=compute, leases=guard, holder="old"
        )
        with pytest.raises(LeaseLost, match="expired before this write"):
            await dispatch.dispatch_once(ctx)
        assert await store.count(RunDocument, states=[RunState.QUEUED]) == 3
        assert await stream_events(js, s.RUN_PENDING, wait=False) == []

        successor = LeaseGuard(MongoLeases(store.db))
        new_ctx = HandlerContext(
            store=MongoFencedStore(store, successor),
            events=FencedEvents(bus, successor),
            compute=compute,
            leases=successor,
            holder="new",
        )
        assert await dispatch.dispatch_once(new_ctx) == 3
        lease_doc = await store.db["leases"].find_one({"_id": dispatcher_lease("local")})
        assert lease_doc is not None and lease_doc["epoch"] == 2 and lease_doc["writes"] == {"2": 3}
        assert len(await stream_events(js, s.RUN_PENDING, wait=False)) == 3
    finally:
        await bus.broker.stop()


def pid_of(holder: str) -> int:
    return int(holder.split(":")[-2])


async def test_a_paused_leader_resumed_after_a_takeover_writes_nothing(
    settings: Settings, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> None:
    run_ids = [f"fence-{n}" for n in range(8)]
    # The dispatcher sits two seconds before each admission, under its lease: paused just after an admission, it is
    # mid-pass (sitting before the next one), and resumes with an admission left to make. At most two admissions a
    # pass keep a pass well within the lease it renews at its start.
    env = {"GXWF_FAULT_POINTS": "jobs.before_admit=sleep:2", "GXWF_RUNS_PER_SITE": "2"}
    replicas = await start_replicas(settings, 2, env=env, groups=("jobs",))
    leases = store.db["leases"]
    paused: int | None = None
    try:
        await request_runs(js, tmp_path / "markers", run_ids)

        async def dispatching() -> dict[str, Any] | None:
            doc = await leases.find_one({"_id": dispatcher_lease("local")})
            admitted = len(run_ids) - await store.count(RunDocument, states=[RunState.QUEUED])
            return doc if doc is not None and admitted >= 1 and await store.count(RunDocument) == len(run_ids) else None

        before = await eventually(dispatching, timeout=30)
        await asyncio.sleep(0.5)  # into the next admission's two seconds
        paused = pid_of(before["holder"])
        assert paused in replicas.pids()
        pause(paused)

        async def taken_over() -> dict[str, Any] | None:
            doc = await leases.find_one({"_id": dispatcher_lease("local")})
            return doc if doc is not None and doc["holder"] != before["holder"] else None

        after = await eventually(taken_over, timeout=40)
        assert after["epoch"] > before["epoch"] and pid_of(after["holder"]) in replicas.pids()
        await asyncio.sleep(1.0)  # the new leader acts for a while
        resumed_at = datetime.now(after["taken_at"].tzinfo)
        resume(paused)
        paused = None

        async def all_done() -> bool:
            return await store.count(RunDocument, states=[RunState.SUCCEEDED]) == len(run_ids)

        await eventually(all_done, timeout=90)

        async def old_figures() -> dict[str, Any] | None:
            # The resumed replica records its figures every GXWF_REPLICA_STATS_INTERVAL_SECONDS.
            doc = await store.db["replica_stats"].find_one({"_id": before["holder"]})
            return doc if doc is not None and doc["updated_at"] > resumed_at else None

        figures = await eventually(old_figures, timeout=30)
        assert alive(pid_of(before["holder"]))
    finally:
        if paused is not None:
            with contextlib.suppress(ProcessLookupError):
                resume(paused)
        assert await replicas.stop() == 0

    lease_doc = await leases.find_one({"_id": dispatcher_lease("local")})
    assert lease_doc is not None
    old_epoch = str(before["epoch"])
    # From the store, in the order it applied them: every write of the old epoch came before the takeover.
    last_old = lease_doc.get("last_seq", {}).get(old_epoch, 0)
    assert last_old <= after["taken_seq"], (lease_doc, after)
    # From its own figures: every act (store write, event, backend action) under the old epoch came before it was
    # resumed, and the resumed pass was refused, quietly.
    acts = [a for a in figures["fenced"] if a["lease"] == dispatcher_lease("local") and a["epoch"] == before["epoch"]]
    assert all(a["last_at"] < resumed_at for a in acts), (acts, resumed_at, lease_doc, after)
    assert figures["refused"] >= 1 and figures["lease_lost"].get("jobs-dispatcher", 0) >= 1, figures
    # Nothing lost, nothing doubled: each run ran once, and was announced pending once.
    for run_id in run_ids:
        assert (tmp_path / "markers" / run_id).read_text() == f"{run_id}\n"
    pending = [e["subject"] for e in await stream_events(js, s.RUN_PENDING)]
    assert sorted(pending) == sorted(run_ids)


async def test_an_admission_recorded_but_never_announced_is_announced_by_the_watcher(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, monkeypatch: Any
) -> None:
    """A dispatcher refused (or killed) between recording an admission and announcing it leaves the run pending
    without its wf.run.pending: the watcher announces it, with the dispatcher's event id, so it is there once."""
    import handlers.jobs.watch as watch
    from events.payloads.run import RunPending
    from handlers.jobs.ids import attempt_fact_id

    monkeypatch.setattr(watch, "REANNOUNCE_SECONDS", 0.5)
    await store.create(queued_run("unannounced"), event_id="q-1")
    pending_id = attempt_fact_id("unannounced", RunPending, 1)
    assert (await store.transition(RunDocument, "unannounced", RunState.PENDING, event_id=pending_id)).changed
    bus = Bus(endpoints.nats)
    await bus.broker.connect()
    try:
        guard = LeaseGuard(MongoLeases(store.db))
        ctx = HandlerContext(
            store=MongoFencedStore(store, guard),
            events=FencedEvents(bus, guard),
            compute=LocalProcessBackend(settings.state_dir / "runs", site="local"),
            leases=guard,
            holder="watcher",
        )
        await asyncio.sleep(0.6)
        await watch.reconcile_once(ctx)
        await watch.reconcile_once(ctx)
    finally:
        await bus.broker.stop()
    announced = await stream_events(js, s.RUN_PENDING, wait=False)
    assert [(e["id"], e["subject"], e["data"]["site"]) for e in announced] == [(pending_id, "unannounced", "local")]
