"""Stop really stops (escaped children included); every finished run's outputs and log are published."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec, RunStopRequested
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.provisioning import ProvisionDocument, ProvisionState, ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, stream_events

CONSUMER = "did:web:consumer.example/one"


def run_processes(run_id: str) -> list[int]:
    marker = f"GXWF_RUN_ID={run_id}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"\0" + marker in b"\0" + (entry / "environ").read_bytes():
                    status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if status != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


async def request(service: HandlerService, run_id: str, script: str, consumer: str = CONSUMER) -> None:
    assert service.bus is not None
    await service.bus.publish(
        new_event(
            s.RUN_REQUESTED,
            RunRequested(
                run_id=run_id,
                consumer_id=consumer,
                asset_id="shell",
                parameters={"GREETING": "hello"},
                spec=RunSpec(command=["/bin/sh", "-c", script]),
            ),
        )
    )


async def state_of(store: MongoStateStore, run_id: str) -> str | None:
    doc = await store.get(RunDocument, run_id)
    return doc.state if doc else None


async def published(store: MongoStateStore, run_id: str) -> ResultDocument | None:
    doc = await store.get(ResultDocument, run_id)
    return doc if doc is not None and doc.state == "published" else None


async def test_stop_kills_the_whole_tree_and_the_run_ends_stopped(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    # One child leaves the process group (setsid): a group kill alone would leave it running.
    await request(service, "stop-1", "setsid sleep 300 & sleep 300 & echo started; wait")
    await eventually(lambda: _is(store, "stop-1", RunState.RUNNING))
    await eventually(lambda: _count_at_least("stop-1", 3))
    assert service.bus is not None

    await service.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="stop-1", consumer_id=CONSUMER, reason="enough"))
    )
    await eventually(lambda: _is(store, "stop-1", RunState.STOPPED))

    assert run_processes("stop-1") == []
    doc = await store.get(RunDocument, "stop-1")
    assert doc is not None and doc.reason == "enough"
    assert [h.to for h in doc.history] == ["queued", "pending", "running", "stopped"]
    result = await eventually(lambda: published(store, "stop-1"))
    manifest = json.loads(await service.objects.get_bytes(result.manifest_key or ""))
    assert manifest["run_state"] == "stopped"
    assert "started" in (await service.objects.get_bytes(manifest["log_key"])).decode()
    assert [e["type"] for e in await stream_events(js, s.RUN_FAILED)] == []


async def test_a_stop_from_another_consumer_or_after_the_end_changes_nothing(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    await request(service, "stop-2", "sleep 300")
    await eventually(lambda: _is(store, "stop-2", RunState.RUNNING))
    assert service.bus is not None
    await service.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="stop-2", consumer_id="did:web:intruder"))
    )
    await request(service, "stop-3", "true")
    await eventually(lambda: _is(store, "stop-3", RunState.SUCCEEDED))
    await service.bus.publish(new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="stop-3", consumer_id=CONSUMER)))
    await eventually(lambda: _acked(js, "jobs-stop-requested-local", 2))

    assert await state_of(store, "stop-2") == RunState.RUNNING
    assert run_processes("stop-2") != []
    assert await state_of(store, "stop-3") == RunState.SUCCEEDED
    assert [e["data"]["run_id"] for e in await stream_events(js, s.RUN_STOPPED)] == []
    await service.local_compute.stop("stop-2")


async def test_outputs_and_log_are_published_under_the_consumers_prefix_with_a_manifest(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the consumer")
    script = (
        'mkdir -p "$GXWF_OUTPUT_DIR/sub" && printf "%s" "$GREETING world" > "$GXWF_OUTPUT_DIR/sub/a.txt"'
        f' && ln -s {secret} "$GXWF_OUTPUT_DIR/link" && echo log-line'
    )
    await request(service, "res-1", script)
    result = await eventually(lambda: published(store, "res-1"))

    prefix = f"results/{quote(CONSUMER, safe='')}/res-1/"
    assert result.manifest_key == prefix + "manifest.json"
    manifest = json.loads(await service.objects.get_bytes(result.manifest_key))
    assert manifest["run_state"] == "succeeded" and manifest["exit_code"] == 0
    assert manifest["asset_id"] == "shell" and manifest["parameters"] == {"GREETING": "hello"}
    assert [f["name"] for f in manifest["files"]] == ["sub/a.txt"]  # the symlink out of the run is not published
    (entry,) = manifest["files"]
    body = await service.objects.get_bytes(entry["key"])
    assert body == b"hello world"
    assert entry["key"] == prefix + "outputs/sub/a.txt"
    assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["size"] == len(body)
    assert (await service.objects.get_bytes(prefix + "log.txt")).decode().strip() == "log-line"
    (announced,) = await stream_events(js, s.RESULT_PUBLISHED)
    assert announced["data"]["files"] == [{"name": "sub/a.txt", "size": 11, "sha256": entry["sha256"]}]


async def test_a_failed_run_still_gets_its_log_archived(service: HandlerService, store: MongoStateStore) -> None:
    await request(service, "res-2", "echo about to fail >&2; exit 4")
    result = await eventually(lambda: published(store, "res-2"))
    manifest = json.loads(await service.objects.get_bytes(result.manifest_key or ""))
    assert manifest["run_state"] == "failed" and manifest["exit_code"] == 4 and manifest["files"] == []
    assert "about to fail" in (await service.objects.get_bytes(manifest["log_key"])).decode()


async def test_a_stop_the_watcher_also_sees_is_reported_once(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    # The stop handler pauses between the kill and its report: the watcher sees the workload gone meanwhile and
    # reports the stop as well. Both must name the same fact, so the stream keeps one.
    slow = settings.model_copy(update={"fault_points": "jobs.after_stop=sleep:1"})
    svc = HandlerService(slow, endpoints)
    await svc.start()
    try:
        assert svc.bus is not None
        await request(svc, "stop-twice", "sleep 300")
        await eventually(lambda: _is(store, "stop-twice", RunState.RUNNING))
        await svc.bus.publish(
            new_event(
                s.RUN_STOP_REQUESTED, RunStopRequested(run_id="stop-twice", consumer_id=CONSUMER, reason="enough")
            )
        )
        await eventually(lambda: _is(store, "stop-twice", RunState.STOPPED))
        await eventually(lambda: _acked(js, "jobs-stop-requested-local", 1))
    finally:
        await svc.stop()

    stopped = await stream_events(js, s.RUN_STOPPED)
    assert [(e["source"], e["data"]["reason"]) for e in stopped] == [("urn:gaiax-workflows:jobs-watcher", "enough")]
    doc = await store.get(RunDocument, "stop-twice")
    assert doc is not None and [h.to for h in doc.history].count("stopped") == 1
    assert await stream_events(js, "dlq.>") == []


async def test_a_result_that_cannot_be_published_fails_and_its_consumer_is_released(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    # Publishing fails on every try (max_attempts 3): the result must settle as failed, not stay collecting
    # for ever, or the consumer whose transfer has ended is never released.
    broken = settings.model_copy(update={"fault_points": "results.publish=raise"})
    svc = HandlerService(broken, endpoints)
    await svc.start()
    try:
        await _ended_transfer(store, "tp-unpublished")
        await request(svc, "res-broken", "echo done")
        result = await eventually(lambda: _result_in(store, "res-broken", ResultState.FAILED))
        (released,) = await eventually(lambda: stream_events(js, s.CONSUMER_RELEASED, wait=False))
    finally:
        await svc.stop()

    reason = "RuntimeError: fault injected at results.publish"
    assert result.reason == reason
    assert [(h.to, h.reason) for h in result.history] == [("collecting", None), ("failed", reason)]
    failed = await stream_events(js, s.RESULT_PUBLISH_FAILED)
    assert [e["data"] for e in failed] == [{"run_id": "res-broken", "consumer_id": CONSUMER, "reason": reason}]
    assert await stream_events(js, s.RESULT_PUBLISHED) == []
    assert released["data"] == {
        "consumer_id": CONSUMER,
        "transfer_process_id": "tp-unpublished",
        "site": "local",
        "runs": 1,
    }
    assert not svc.local_compute.run_dir("res-broken").exists()
    # The event the handler gave up on is kept with its error, as for any handler.
    (letter,) = await stream_events(js, "dlq.>")
    assert letter["original_subject"] == s.RUN_SUCCEEDED and letter["delivery_count"] == 3


async def _ended_transfer(store: MongoStateStore, tp: str) -> None:
    """The consumer's only transfer, deprovisioned: nothing but its runs' results holds its release back."""
    doc = ProvisionDocument(id=tp, state=ProvisionState.REQUESTED, connector="default", consumer_id=CONSUMER)
    await store.create(doc, event_id="test-requested")
    for state in (ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED):
        assert (await store.transition(ProvisionDocument, tp, state, event_id="test-teardown")).changed


async def _result_in(store: MongoStateStore, run_id: str, state: ResultState) -> ResultDocument | None:
    doc = await store.get(ResultDocument, run_id)
    return doc if doc is not None and doc.state == state else None


async def _is(store: MongoStateStore, run_id: str, state: RunState) -> bool:
    return await state_of(store, run_id) == state


async def _count_at_least(run_id: str, count: int) -> bool:
    return len(run_processes(run_id)) >= count


async def _acked(js: JetStreamContext, durable: str, count: int) -> bool:
    info = await js.consumer_info("WF", durable)
    return info.delivered.consumer_seq >= count and info.num_ack_pending == 0
