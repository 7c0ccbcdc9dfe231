"""Results retention on the real pipeline: results past the retention are deleted from the object store and
marked expired, once; a result being downloaded (its download lease held) is kept until the download ends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC

import pytest
from nats.js import JetStreamContext

from adapters.mongo_leases import MongoLeases
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.names import result_download_lease, result_prefix
from schemas.provisioning import ResultDocument, ResultState
from tests.backbone.conftest import eventually, stream_events

# About a second: long enough to see a result published before it expires.
RETENTION_DAYS = 1.0 / 86_400


@pytest.fixture
async def service(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[HandlerService]:
    chosen = settings.model_copy(update={"result_retention_days": RETENTION_DAYS, "retention_interval_seconds": 0.2})
    svc = HandlerService(chosen, endpoints, groups=["jobs", "results"])
    await svc.start()
    yield svc
    await svc.stop()


async def run_with_output(service: HandlerService, run_id: str) -> None:
    assert service.bus is not None
    script = 'echo data > "$GXWF_OUTPUT_DIR/out.txt"; echo logged'
    request = RunRequested(
        run_id=run_id, consumer_id="c-ret", asset_id="shell", spec=RunSpec(command=["/bin/sh", "-c", script])
    )
    await service.bus.publish(new_event(s.RUN_REQUESTED, request))


async def state_of(store: MongoStateStore, run_id: str, state: str) -> ResultDocument | None:
    doc = await store.get(ResultDocument, run_id)
    return doc if doc is not None and doc.state == state else None


async def test_results_past_retention_are_deleted_and_marked_expired(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext
) -> None:
    await run_with_output(service, "ret-1")
    published = await eventually(lambda: state_of(store, "ret-1", ResultState.PUBLISHED))
    prefix = result_prefix("c-ret", "ret-1")
    names = {o.key.removeprefix(prefix) for o in await service.objects.list(prefix)}
    assert names == {"outputs/out.txt", "log.txt", "manifest.json"}
    assert published.files

    expired = await eventually(lambda: state_of(store, "ret-1", ResultState.EXPIRED), timeout=15)
    assert await service.objects.list(prefix) == []
    assert expired.history[-1].reason == f"older than the retention of {RETENTION_DAYS:g} days"
    events = await stream_events(js, s.RESULT_EXPIRED)
    assert [(e["data"]["run_id"], e["data"]["objects"]) for e in events] == [("ret-1", 3)]


async def test_a_result_being_downloaded_is_kept_until_the_download_ends(
    service: HandlerService, store: MongoStateStore, settings: Settings
) -> None:
    leases = MongoLeases(store.db)
    # A download in progress: the WorkflowApi holds this lease while it streams.
    assert await leases.hold(result_download_lease("ret-2"), "workflow-api", ttl_seconds=4.0)
    await run_with_output(service, "ret-2")
    await eventually(lambda: state_of(store, "ret-2", ResultState.PUBLISHED))
    prefix = result_prefix("c-ret", "ret-2")

    expired = await eventually(lambda: state_of(store, "ret-2", ResultState.EXPIRED), timeout=15)
    # Past the retention a second after publishing, but deleted only once the 4 s download lease had ended.
    lease = await store.db["leases"].find_one({"_id": result_download_lease("ret-2")})
    assert lease is not None
    lease_end = lease["expires_at"].replace(tzinfo=UTC)
    assert expired.history[-1].at.replace(tzinfo=UTC) >= lease_end
    assert await service.objects.list(prefix) == []
