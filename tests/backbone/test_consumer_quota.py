"""The site's consumer quota on the real pipeline: a run bigger than the quota fails at once, saying why; a
consumer at its quota waits while another consumer's run goes ahead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, stream_events

SITES = """
sites:
  - name: local
    backend: local
    capabilities: {cpu: 8, memory: 8Gi}
    consumer_quota: {cpu: 2, runs: 1}
"""


@pytest.fixture
async def quota_service(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> AsyncIterator[HandlerService]:
    sites = tmp_path / "sites.yaml"
    sites.write_text(SITES)
    svc = HandlerService(settings.model_copy(update={"sites_file": sites}), endpoints)
    await svc.start()
    yield svc
    await svc.stop()


def request(run_id: str, consumer: str, command: list[str], cpu: float) -> RunRequested:
    return RunRequested(run_id=run_id, consumer_id=consumer, asset_id="shell", spec=RunSpec(command=command, cpu=cpu))


async def test_a_run_bigger_than_the_consumer_quota_fails_with_the_reason(
    quota_service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    assert quota_service.bus is not None
    await quota_service.bus.publish(new_event(s.RUN_REQUESTED, request("q-big", "c-1", ["true"], cpu=4)))
    doc = await eventually(lambda: finished(store, "q-big"))

    assert doc.state == RunState.FAILED
    assert doc.reason == "exceeds the consumer quota on site local: 4 cpu > 2"
    assert [(h.from_, h.to) for h in doc.history] == [(None, "queued"), ("queued", "failed")]
    failed = [e for e in await stream_events(js, s.RUN_FAILED) if e["data"]["run_id"] == "q-big"]
    assert len(failed) == 1
    assert failed[0]["data"]["reason"] == doc.reason


async def test_a_consumer_at_its_quota_waits_and_another_goes_ahead(
    quota_service: HandlerService, store: MongoStateStore, tmp_path: Path
) -> None:
    assert quota_service.bus is not None
    gate = tmp_path / "gate"
    hold = ["/bin/sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]
    await quota_service.bus.publish(new_event(s.RUN_REQUESTED, request("q-a1", "c-a", hold, cpu=1)))

    async def running(run_id: str) -> bool:
        doc = await store.get(RunDocument, run_id)
        return doc is not None and doc.state == RunState.RUNNING

    await eventually(lambda: running("q-a1"))
    await quota_service.bus.publish(new_event(s.RUN_REQUESTED, request("q-a2", "c-a", ["true"], cpu=1)))
    await quota_service.bus.publish(new_event(s.RUN_REQUESTED, request("q-b1", "c-b", ["true"], cpu=1)))
    # The other consumer is not held up by c-a's quota.
    other = await eventually(lambda: finished(store, "q-b1"))
    assert other.state == RunState.SUCCEEDED
    waiting = await store.get(RunDocument, "q-a2")
    assert waiting is not None
    assert waiting.state == RunState.QUEUED, "one run at a time for c-a (quota runs: 1)"

    gate.touch()
    second = await eventually(lambda: finished(store, "q-a2"))
    first = await store.get(RunDocument, "q-a1")
    assert second.state == RunState.SUCCEEDED
    assert first is not None
    assert first.state == RunState.SUCCEEDED
    admitted = next(h.at for h in second.history if h.to == "pending")
    assert admitted >= first.history[-1].at, "admitted only once the first run had ended"
