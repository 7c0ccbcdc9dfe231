"""Attack: a consumer whose transfer ended keeps reading with its old token, and keeps results from ever being
deleted by holding their download lease.

Against the real WorkflowApi with the jobs and results handlers (a run really runs): once its access is revoked,
the token reads nothing (401), unless the operator set a grace period, which the principal cache does not
stretch; presigned download URLs are short-lived, and no download holds the results' lease beyond its longest
time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_leases import MongoLeases
from adapters.mongo_store import MongoStateStore
from events.envelope import utcnow
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from handlers.context import HandlerContext
from handlers.results.retention import expire_once
from schemas.names import RESULTS_RETENTION_LEASE, result_download_lease
from tests.workflow_api.conftest import (
    COUNT_LINES,
    Api,
    api_service,
    endpoints,
    eventually,
    js,
    nc,
    settings,
    store,
)
from workflow_api.context import ApiContext
from workflow_api.principals import PrincipalCache
from workflow_api.results import download_lease
from workflow_api.settings import WorkflowApiSettings

__all__ = ["endpoints", "js", "nc", "settings", "store"]

pytestmark = pytest.mark.servers

GRACE = 2.0


async def _start(settings: Settings, endpoints: Endpoints, store: MongoStateStore, **overrides: Any) -> Api:
    await MongoAssetCatalogue(store.db).apply(COUNT_LINES)
    handlers = HandlerService(settings, endpoints)
    await handlers.start()
    service = api_service(settings, endpoints, **overrides)
    url = await service.start()
    return Api(url, store, service, handlers, settings)


@pytest.fixture
async def api(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    """The operator's defaults for revoked tokens (no grace) and presigned downloads."""
    running = await _start(settings, endpoints, store, workflow_api_revoked_grace_seconds=0)
    yield running
    await running.service.stop()
    assert running.handlers is not None
    await running.handlers.stop()


async def _finished_run(api: Api, token: str) -> str:
    async with api.http(token) as http:
        text = await http.post("/v1/inputs", params={"name": "text"}, content=b"a\nb\n")
        started = await http.post("/v1/runs", json={"asset_id": "count-lines", "inputs": {"text": text.json()["id"]}})
        assert started.status_code == 202, started.text
        run_id: str = started.json()["run_id"]

        async def published() -> bool:
            return (await http.get(f"/v1/runs/{run_id}/results")).status_code == 200

        await eventually(published, timeout=30)
        return run_id


async def _revoke(api: Api, consumer: str) -> None:
    """What deprovisioning leaves: the grant revoked, the provision deprovisioned."""
    now = utcnow()
    await api.store.db["access_grants"].update_many(
        {"consumer_id": consumer}, {"$set": {"state": "revoked", "updated_at": now}}
    )
    await api.store.db["provisions"].update_many(
        {"consumer_id": consumer},
        {"$set": {"state": "deprovisioned", "deprovision_reason": "contract ended", "updated_at": now}},
    )


def _reads(run_id: str) -> list[str]:
    return [
        "/v1/runs",
        f"/v1/runs/{run_id}",
        f"/v1/runs/{run_id}/logs",
        f"/v1/runs/{run_id}/results",
        f"/v1/runs/{run_id}/results/files/count.txt",
        f"/v1/runs/{run_id}/results/urls/count.txt",
        f"/v1/runs/{run_id}/results/archive",
    ]


async def test_a_revoked_token_reads_nothing(api: Api) -> None:
    consumer, token = await api.consumer()
    run_id = await _finished_run(api, token)
    await _revoke(api, consumer)
    await asyncio.sleep(api.service.settings.workflow_api_auth_cache_seconds + 0.1)
    async with api.http(token) as http:
        for path in _reads(run_id):
            refused = await http.get(path)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
            assert "contract ended" in refused.json()["detail"]


async def test_within_the_operators_grace_it_reads_and_the_cache_does_not_stretch_it(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    api = await _start(settings, endpoints, store, workflow_api_revoked_grace_seconds=GRACE)
    try:
        consumer, token = await api.consumer()
        run_id = await _finished_run(api, token)
        await _revoke(api, consumer)
        revoked = time.monotonic()
        # From now on the API caches each answer far longer than the grace: a cached answer must still end with
        # it. (The active principal cached before the revocation is dropped, as the 1 s default would have.)
        principals = _principals(api)
        principals.seconds = 30
        principals._entries.clear()
        async with api.http(token) as http:
            for path in _reads(run_id):
                assert (await http.get(path)).status_code == 200, path
            refused = await http.post("/v1/inputs", params={"name": "t"}, content=b"x")
            assert refused.status_code == 403 and refused.json()["type"] == "urn:gxwf:problem:deprovisioned"
            await asyncio.sleep(max(0.0, revoked + GRACE + 0.2 - time.monotonic()))
            for path in _reads(run_id):
                assert (await http.get(path)).status_code == 401, path
    finally:
        await api.service.stop()
        assert api.handlers is not None
        await api.handlers.stop()


def _principals(api: Api) -> PrincipalCache:
    app: Any = api.service._served._server.config.app  # type: ignore[union-attr]
    return cast(ApiContext, app.state.api).principals


async def test_presigned_download_urls_are_short_lived(api: Api) -> None:
    _, token = await api.consumer()
    run_id = await _finished_run(api, token)
    async with api.http(token) as http:
        answer = (await http.get(f"/v1/runs/{run_id}/results/urls/count.txt")).json()
    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert (expires - utcnow()).total_seconds() <= 300
    query = parse_qs(urlsplit(answer["url"]).query)
    # Signed for that long, whichever signature version the object store client uses.
    if "X-Amz-Expires" in query:
        assert query["X-Amz-Expires"] == ["300"]
    else:
        assert int(query["Expires"][0]) <= time.time() + 301
    async with httpx.AsyncClient() as s3:
        assert (await s3.get(answer["url"])).status_code == 200


async def test_a_download_holds_the_results_lease_no_longer_than_its_longest_time(store: MongoStateStore) -> None:
    """However long a download streams, its renewals stop at the longest lease time, and so does the download."""
    settings = WorkflowApiSettings(
        _env_file=None, workflow_api_download_lease_seconds=1, workflow_api_download_lease_max_seconds=1.5
    )
    leases = MongoLeases(store.db)
    context = cast(ApiContext, SimpleNamespace(settings=settings, leases=leases, holder="slow-download"))
    name = result_download_lease("run-slow")
    async with download_lease(context, "run-slow") as held:
        assert held() and await leases.held(name)
        await asyncio.sleep(1.2)
        assert held() and await leases.held(name)  # renewed
        await asyncio.sleep(1.0)
        assert not held()  # past its longest time: the download stops here
        await asyncio.sleep(0.5)
        assert not await leases.held(name)  # and retention may go ahead


async def test_presigned_urls_asked_again_and_again_do_not_keep_results_for_ever(api: Api) -> None:
    """Each presigned URL holds the download lease for its validity; asking for one every few minutes would
    renew it for ever. Retention waits for a held lease only so long past the results' due time."""
    _, token = await api.consumer()
    run_id = await _finished_run(api, token)
    async with api.http(token) as http:
        assert (await http.get(f"/v1/runs/{run_id}/results/urls/count.txt")).status_code == 200
    assert api.handlers is not None and api.handlers.bus is not None
    ctx = HandlerContext(
        store=api.store, events=api.handlers.bus, objects=api.handlers.objects, leases=MongoLeases(api.store.db)
    )
    # This pass, not the handlers' own (which took the retention lease when they started), decides here.
    await api.store.db["leases"].delete_one({"_id": RESULTS_RETENTION_LEASE})
    # Due a moment ago, and held: kept while within the longest hold ...
    assert await expire_once(ctx, retention_days=1e-9, held_at_most_seconds=3600) == 0
    assert await api.store.db["results"].count_documents({"_id": run_id, "state": "published"}) == 1
    # ... and deleted once past it, held or not.
    assert await expire_once(ctx, retention_days=1e-9, held_at_most_seconds=0) == 1
    async with api.http(token) as http:
        assert (await http.get(f"/v1/runs/{run_id}/results")).status_code == 410
