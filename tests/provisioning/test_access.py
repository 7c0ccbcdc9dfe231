"""GET /access/{transferProcessId}: the WorkflowApi URL only once negotiation, deployment and asset are done."""

from __future__ import annotations

from nats.js import JetStreamContext

from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from schemas.provisioning import ProvisionDocument, ResultDocument
from schemas.run import RunDocument
from tests.backbone.conftest import eventually, stream_events
from tests.edc_fixtures import OTHER_KEY
from tests.provisioning.conftest import CONSUMER, TENANT, StartProvider


async def test_access_names_the_missing_step_until_everything_is_done(start_provider: StartProvider) -> None:
    provider = await start_provider(fault_points="deployment.deploy=sleep:1")

    # Known to us before the connector confirmed an agreement: the negotiation is the missing step.
    await provider.store.create(
        ProvisionDocument(id="tp-early", state="requested", connector="default"), event_id="test"
    )
    early = await provider.access("tp-early")
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    assert early.json()["errors"] == [{"field": "step", "message": "negotiation"}]

    transfer = await provider.begin()
    await provider.reaches(transfer.id, "deploying")
    waiting = await provider.access(transfer.id)
    assert waiting.status_code == 409 and "not deployed and ready yet" in waiting.json()["detail"]
    assert waiting.json()["errors"] == [{"field": "step", "message": "deployment"}]

    await provider.reaches(transfer.id, "granted")
    answer = await provider.access(transfer.id)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["workflowApiUrl"] == provider.settings.workflow_api_url
    assert (body["consumerId"], body["assetId"], body["assetVersion"]) == (CONSUMER, "shell-count", 1)
    assert "token" not in body and len(body["tokenFingerprint"]) == 8


async def test_access_refuses_strangers_and_unknown_transfers(start_provider: StartProvider) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    for key in (None, "wrong-key-0123456789abcdef", OTHER_KEY):
        refused = await provider.access(transfer.id, key=key)
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        assert "workflowApiUrl" not in refused.text
    unknown = await provider.access("no-such-transfer")
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no provisioning for transfer no-such-transfer"


async def test_deprovisioning_stops_the_consumers_running_runs(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    run = RunRequested(
        run_id="run-of-consumer",
        consumer_id=TENANT,
        # Not the catalogue's shell-count (its own command would run): an ad-hoc run that lasts.
        asset_id="adhoc-sleep",
        spec=RunSpec(command=["/bin/sh", "-c", "sleep 60"], timeout_seconds=120),
    )
    assert provider.handlers.bus is not None
    await provider.handlers.bus.publish(new_event(s.RUN_REQUESTED, run, subject=run.run_id))

    async def running() -> bool:
        doc = await provider.store.get(RunDocument, run.run_id)
        return doc is not None and doc.state == "running"

    await eventually(running)
    await provider.deprovision(transfer)
    await provider.reaches(transfer.id, "deprovisioned")

    async def stopped() -> RunDocument | None:
        doc = await provider.store.get(RunDocument, run.run_id)
        return doc if doc is not None and doc.state == "stopped" else None

    doc = await eventually(stopped)
    assert doc.reason is None or "deprovisioned" in doc.reason
    stops = await stream_events(js, s.RUN_STOP_REQUESTED)
    assert [e["data"]["reason"] for e in stops] == ["deprovisioned: deprovision requested by the connector"]

    # The consumer has no transfer left: once the stopped run's results are out, its run directory goes too.
    async def released() -> list[dict[str, object]]:
        return await stream_events(js, s.CONSUMER_RELEASED, wait=False)

    (event,) = await eventually(released)
    assert event["data"] == {"consumer_id": TENANT, "transfer_process_id": transfer.id, "site": "local", "runs": 1}
    assert not provider.handlers.local_compute.run_dir(run.run_id).exists()
    result = await provider.store.get(ResultDocument, run.run_id)
    assert result is not None and result.state == "published", "results stay for the retention period"
