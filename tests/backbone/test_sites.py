"""Two compute sites at once: each site's jobs and results handlers take the runs meant for their site, and
only those: start, stop and results happen where the run is."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec, RunStopRequested
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, stream_events


@pytest.fixture
async def sites(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, tmp_path: Path
) -> AsyncIterator[dict[str, HandlerService]]:
    services: dict[str, HandlerService] = {}
    for name in ("alpha", "beta"):
        chosen = settings.model_copy(update={"compute_site": name, "state_dir": tmp_path / name})
        services[name] = HandlerService(chosen, endpoints, groups=["jobs", "results"])
        await services[name].start()
    yield services
    for service in services.values():
        await service.stop()


def request(run_id: str, site: str, script: str) -> RunRequested:
    spec = RunSpec(command=["/bin/sh", "-c", script])
    return RunRequested(run_id=run_id, consumer_id="c-sites", asset_id="shell", site=site, spec=spec)


async def test_each_site_runs_stops_and_publishes_its_own_runs(
    sites: dict[str, HandlerService], store: MongoStateStore, js: JetStreamContext
) -> None:
    alpha, beta = sites["alpha"], sites["beta"]
    assert alpha.bus is not None
    for run_id, site in [("on-alpha", "alpha"), ("on-beta", "beta")]:
        await alpha.bus.publish(new_event(s.RUN_REQUESTED, request(run_id, site, f"echo ran on {site}")))
    await alpha.bus.publish(new_event(s.RUN_REQUESTED, request("long-beta", "beta", "sleep 30")))
    for run_id, site in [("on-alpha", "alpha"), ("on-beta", "beta")]:
        doc: RunDocument = await eventually(lambda run_id=run_id: finished(store, run_id))  # type: ignore[misc]
        assert (doc.state, doc.site) == (RunState.SUCCEEDED, site)
        here, there = (alpha, beta) if site == "alpha" else (beta, alpha)
        assert f"ran on {site}" in here.local_compute.log_path(run_id).read_text()
        assert not there.local_compute.run_dir(run_id).exists(), "started on its own site only"

    async def running() -> bool:
        doc = await store.get(RunDocument, "long-beta")
        return doc is not None and doc.state == RunState.RUNNING

    await eventually(running)
    # The stop reaches both sites' handlers; beta's, where the run is, kills it.
    await alpha.bus.publish(
        new_event(s.RUN_STOP_REQUESTED, RunStopRequested(run_id="long-beta", consumer_id="c-sites"))
    )
    stopped = await eventually(lambda: finished(store, "long-beta"))
    assert stopped.state == RunState.STOPPED
    published = Counter(e["data"]["run_id"] for e in await stream_events(js, s.RESULT_PUBLISHED))
    assert published == Counter({"on-alpha": 1, "on-beta": 1, "long-beta": 1})
