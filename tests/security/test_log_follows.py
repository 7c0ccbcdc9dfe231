"""Attack: log follows that a consumer opens by the hundred, keeps open for ever, or points at a run that will
never be queued, each holding a connection, a poll loop and a log-stream reader in the WorkflowApi.

Against the real WorkflowApi with the jobs and results handlers behind it (runs really run on the local backend):
follows are capped per consumer (429 with Retry-After), each ends at its deadline with a `reconnect` event the
client resumes from without a gap, and a run recorded but never queued ends its follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from events.envelope import utcnow
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RunRequestRecord
from tests.workflow_api.conftest import (
    COUNT_LINES,
    SLEEPER,
    Api,
    api_service,
    endpoints,
    eventually,
    js,
    nc,
    settings,
    store,
)

__all__ = ["endpoints", "js", "nc", "settings", "store"]

pytestmark = pytest.mark.servers

FOLLOWS = 2
FOLLOW_SECONDS = 0.6


@pytest.fixture
async def api(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    catalogue = MongoAssetCatalogue(store.db)
    for definition in (COUNT_LINES, SLEEPER):
        await catalogue.apply(definition)
    handlers = HandlerService(settings, endpoints)
    await handlers.start()
    service = api_service(
        settings,
        endpoints,
        workflow_api_log_follows_per_consumer=FOLLOWS,
        workflow_api_log_follow_seconds=FOLLOW_SECONDS,
        workflow_api_log_queue_wait_seconds=1.0,
    )
    url = await service.start()
    yield Api(url, store, service, handlers, settings)
    await service.stop()
    await handlers.stop()


async def _sleeping_run(http: httpx.AsyncClient) -> str:
    started = await http.post("/v1/runs", json={"asset_id": "sleeper"})
    assert started.status_code == 202, started.text
    run_id: str = started.json()["run_id"]
    return run_id


@contextlib.asynccontextmanager
async def _follow(http: httpx.AsyncClient, run_id: str) -> AsyncIterator[httpx.Response]:
    async with http.stream("GET", f"/v1/runs/{run_id}/logs", params={"follow": "true"}) as response:
        yield response


async def test_follows_beyond_the_cap_are_refused_with_429(api: Api) -> None:
    _, token = await api.consumer()
    _, other = await api.consumer()
    async with api.http(token) as http, api.http(other) as http_other:
        run_id = await _sleeping_run(http)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(FOLLOWS):
                opened = await held.enter_async_context(_follow(http, run_id))
                assert opened.status_code == 200
            refused = await http.get(f"/v1/runs/{run_id}/logs", params={"follow": "true"})
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert int(refused.headers["retry-after"]) > 0
            # Another consumer's follows are its own.
            theirs = await _sleeping_run(http_other)
            async with _follow(http_other, theirs) as response:
                assert response.status_code == 200
        # A follow that ended (here: its client went) gives its slot back.

        async def reopened() -> bool:
            async with _follow(http, run_id) as response:
                return response.status_code == 200

        assert await eventually(reopened, timeout=5)
        await http.post(f"/v1/runs/{run_id}/stop")


async def test_a_follow_ends_at_its_deadline_and_resumes_without_a_gap(api: Api) -> None:
    _, token = await api.consumer()
    async with api.http(token) as http:
        run_id = await _sleeping_run(http)
        async with asyncio.timeout(10), _follow(http, run_id) as response:
            kinds = [line async for line in response.aiter_lines() if line.startswith("event:")]
        # The stream ended by itself, the run still going: its last event says where to resume.
        assert kinds[-1] == "event: reconnect"
        await http.post(f"/v1/runs/{run_id}/stop")
        uploaded = await http.post("/v1/inputs", params={"name": "text"}, content=b"a\nb\n")
        assert uploaded.status_code == 201, uploaded.text
    async with api.client(token) as client:
        accepted = await client.start_run(
            "count-lines", parameters={"COUNT": 20, "MODE": "slow"}, inputs={"text": uploaded.json()["id"]}
        )
        async with asyncio.timeout(60):
            events = [event async for event in client.follow_logs(accepted.run_id)]
    logs = [e for e in events if e.kind == "log"]
    assert events[-1].kind == "end"
    # Across several follows (20 lines at 0.1 s, each follow 0.6 s), every byte once: each event starts where
    # the one before ended.
    position = 0
    for event in logs:
        assert event.offset == position + len((event.data + "\n").encode()), (position, event)
        position = event.offset
    lines = "\n".join(e.data for e in logs).splitlines()
    assert lines[:20] == [f"line {i} slow" for i in range(20)]


async def test_a_run_recorded_but_never_queued_ends_its_follow(api: Api) -> None:
    """A start recorded whose publish never reached the bus (the API answered 503 and nobody retried)."""
    consumer, token = await api.consumer()
    run_id = f"run-{uuid.uuid4()}"
    record = RunRequestRecord(
        id=run_id, consumer_id=consumer, asset_id="sleeper", asset_version=1, fingerprint="0" * 64, created_at=utcnow()
    )
    await api.store.db[RunRequestRecord.collection].insert_one(record.model_dump(by_alias=True))
    async with api.client(token) as client, asyncio.timeout(10):
        events = [event async for event in client.follow_logs(run_id)]
    assert [e.kind for e in events] == ["end"]
    assert '"state": "requested"' in events[0].data
