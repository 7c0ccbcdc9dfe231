"""The WorkflowApi and the dashboard read a run's live log from the stream through one reader: for a run away
from both (a Kubernetes pod), they show the same bytes, attempts separated as in the archived log."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
from nats.js import JetStreamContext

from adapters.jetstream_logs import JetStreamLogReader, JetStreamLogSink
from gxwf.settings import Settings
from schemas.names import attempt_separator
from schemas.run import RunDocument, RunState
from tests.dashboard.conftest import bearer, make_dashboard
from tests.workflow_api.conftest import Api

if TYPE_CHECKING:
    from devstack import StackEndpoints


async def test_both_services_show_a_streamed_log_alike(
    api_only: Api, stack: StackEndpoints, settings: Settings, js: JetStreamContext
) -> None:
    consumer_id, token = await api_only.consumer()
    run = RunDocument(id="shared-log-1", state=RunState.QUEUED, consumer_id=consumer_id, asset_id="count-lines")
    await api_only.store.create(run.model_copy(update={"backend": "kubernetes"}), event_id="e1")
    sink = JetStreamLogSink(js)
    await sink.append(run.id, 1, 0, b"frame 1\nframe 2\n")
    await sink.append(run.id, 2, 0, b"again 1\n")
    expected = "frame 1\nframe 2\n" + attempt_separator(2) + "again 1\n"

    dashboard = make_dashboard(stack, settings)
    await dashboard.start()
    try:
        assert dashboard.dashboard is not None and isinstance(dashboard.dashboard.logs, JetStreamLogReader)
        async with httpx.AsyncClient(base_url=str(dashboard.url), timeout=10) as http:
            shown = await http.get(f"/runs/{run.id}/log", headers=bearer())
        async with api_only.http(token) as http:
            served = await http.get(f"/v1/runs/{run.id}/logs")
            resumed = await http.get(f"/v1/runs/{run.id}/logs", params={"offset": 10})
    finally:
        await dashboard.stop()
    assert shown.status_code == served.status_code == 200, (shown.text, served.text)
    assert shown.headers["x-gxwf-log"] == "stream"
    assert served.text == shown.text == expected
    assert resumed.text == expected[10:]
