"""Duplicates change the store once; out-of-order facts are rejected, acked, and leave documents intact."""

from __future__ import annotations

import json
from pathlib import Path

from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import derived_id, new_event
from events.payloads.run import RunRequested, RunSpec, RunSucceeded
from gxwf.runtime import HandlerService
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, quiet, stream_events


async def test_the_same_event_published_twice_runs_once(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext, tmp_path: Path
) -> None:
    marker = tmp_path / "count"
    event = new_event(
        s.RUN_REQUESTED,
        RunRequested(
            run_id="dup-1",
            consumer_id="c-1",
            asset_id="shell",
            spec=RunSpec(command=["/bin/sh", "-c", f"echo x >> {marker}"]),
        ),
    )
    body = json.dumps(event.model_dump(mode="json")).encode()
    # Once through JetStream's de-duplication (same Nats-Msg-Id) ...
    acks = [await js.publish(s.RUN_REQUESTED, body, headers={"Nats-Msg-Id": event.id}) for _ in range(2)]
    assert [a.duplicate for a in acks] == [None, True]
    # ... and once around it (a redelivery, or a publish after the window): the handler must hold.
    await js.publish(s.RUN_REQUESTED, body, headers={"Nats-Msg-Id": event.id + "-again"})

    await eventually(lambda: finished(store, "dup-1"))
    await quiet(js)  # every handler acked both copies: the second one has had its chance to do harm

    doc = await store.get(RunDocument, "dup-1")
    assert doc is not None and doc.state == RunState.SUCCEEDED
    assert [h.to for h in doc.history] == ["queued", "pending", "running", "succeeded"]
    assert marker.read_text() == "x\n"
    facts = [e["type"] for e in await stream_events(js, "wf.run.>") if e["type"] != s.RUN_REQUESTED]
    assert facts == [s.RUN_QUEUED, s.RUN_PENDING, s.RUN_RUNNING, s.RUN_SUCCEEDED]


async def test_a_request_reusing_another_runs_id_is_ignored(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert service.bus is not None
    for marker in (first, second):
        await service.bus.publish(
            new_event(
                s.RUN_REQUESTED,
                RunRequested(
                    run_id="same-id",
                    consumer_id="c-1",
                    asset_id="shell",
                    spec=RunSpec(command=["/bin/sh", "-c", f"touch {marker}"]),
                ),
            )
        )
    await eventually(lambda: finished(store, "same-id"))
    assert await quiet(js)
    assert first.exists()
    assert not second.exists()


async def test_an_out_of_order_fact_is_rejected_acked_and_changes_nothing(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    queued = RunDocument(id="ooo-1", state=RunState.QUEUED, consumer_id="c-1", asset_id="shell", site="elsewhere")
    assert await store.create(queued, event_id="seed")
    before = await store.get(RunDocument, "ooo-1")
    assert service.bus is not None

    await service.bus.publish(
        new_event(
            s.RUN_SUCCEEDED,
            RunSucceeded(run_id="ooo-1", consumer_id="c-1", duration_seconds=1.0),
            id_=derived_id("ooo-1", "test-succeeded"),
        )
    )

    async def acked() -> bool:
        info = await js.consumer_info("WF", "jobs-track-succeeded")
        return info.num_ack_pending == 0 and info.num_pending == 0 and info.delivered.stream_seq > 0

    await eventually(acked)
    after = await store.get(RunDocument, "ooo-1")
    assert after == before
    assert await stream_events(js, "dlq.>") == []
