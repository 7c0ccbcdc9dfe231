"""The dashboard on the session's real servers: fresh streams and database per test, tokens of its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from dashboard.auth import Tokens
from dashboard.service import DashboardService, Servers
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from events.wire import publish_to_jetstream
from gxwf.definitions import load_sites
from gxwf.settings import Settings
from tests.backbone.conftest import endpoints, eventually, js, nc, settings, store
from tests.provisioning.conftest import start_provider

if TYPE_CHECKING:
    from devstack import StackEndpoints

__all__ = ["endpoints", "eventually", "js", "nc", "settings", "start_provider", "store"]

OPERATOR = "operator-token-for-tests-0001"
ADMIN = "admin-token-for-tests-00000002"
TOKENS = Tokens(OPERATOR, ADMIN)


@pytest.fixture
def output_dir() -> Path:
    """Screenshots go here (ignored by git), so a person can look at what the browser saw."""
    path = Path(__file__).parents[2] / "test-output" / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def make_dashboard(stack: StackEndpoints, settings: Settings, **options: Any) -> DashboardService:
    return DashboardService(
        Servers(
            nats=stack.nats_for("dashboard"),
            mongo=stack.mongo,
            mongo_database=settings.mongo_database,
            s3=stack.s3,
            s3_bucket=stack.s3_bucket,
            s3_access_key=stack.s3_access_key,
            s3_secret_key=stack.s3_secret_key,
            nats_monitor=stack.nats_monitor,
        ),
        TOKENS,
        sites=load_sites(None).sites,
        host="127.0.0.1",
        port=0,
        runs_dir=settings.state_dir / "runs",
        runs_per_site=settings.runs_per_site,
        **options,
    )


@pytest.fixture
async def dashboard(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[DashboardService]:
    service = make_dashboard(stack, settings)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def http(dashboard: DashboardService) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=str(dashboard.url), timeout=10) as client:
        yield client


def bearer(token: str = OPERATOR) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def publish_run_requested(
    js: JetStreamContext, run_id: str, consumer: str = "did:web:c1", command: tuple[str, ...] = ("/bin/true",)
) -> None:
    """A real event of the catalogue, published as the WorkflowApi would."""
    request = RunRequested(
        # An asset the catalogue does not hold: an ad-hoc run of the command given (the catalogue's shell-count
        # would run its own command instead).
        run_id=run_id,
        consumer_id=consumer,
        asset_id="adhoc-shell",
        spec=RunSpec(command=list(command)),
    )
    await publish_to_jetstream(js, new_event("wf.run.requested", request, id_=f"req-{run_id}", correlationid=run_id))


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    want: int,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
    params: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The first `want` SSE events of type `event` (and every cursor before them), parsed."""
    found: list[dict[str, Any]] = []
    async with (
        asyncio.timeout(timeout),
        client.stream("GET", url, headers={**bearer(), **(headers or {})}, params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        current: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line == "":
                if current.get("event") in ("event", "cursor"):
                    found.append(current)
                    if sum(1 for f in found if f["event"] == "event") >= want:
                        return found
                current = {}
            elif line.startswith(":"):
                continue
            else:
                key, _, value = line.partition(":")
                current[key] = value.removeprefix(" ")
    return found


async def tail_open(dashboard: DashboardService, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until `count` tails are being served: what is published from then on reaches them."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(dashboard.hub.clients) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(dashboard.hub.clients)} tails open"
        await asyncio.sleep(0.01)


def events_of(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [json.loads(f["data"]) for f in found if f["event"] == "event"]
