"""Each way a provisioning can fail ends it failed, with its reason, an event, and the connector told."""

from __future__ import annotations

from nats.js import JetStreamContext

from events import subjects as s
from schemas.provisioning import DeploymentDocument
from tests.backbone.conftest import stream_events
from tests.provisioning.conftest import Provider, StartProvider


async def _failed(provider: Provider, js: JetStreamContext, tp: str, step: str) -> str:
    """The failure as each side sees it; returns the reason."""
    doc = await provider.reaches(tp, "failed")
    assert doc.failed_step == step and doc.reason
    events = [e for e in await stream_events(js, s.CONSUMER_PROVISIONING_FAILED) if e["subject"] == tp]
    assert [(e["data"]["step"], e["data"]["reason"]) for e in events] == [(step, doc.reason)]
    told = await provider.sim.ledger.wait_for(tp, "deprovision", 10)
    assert told is not None
    if provider.sim.version.provisioner == "control-plane":
        assert told.body["error"] is True and doc.reason in told.body["errorMessage"]
    assert provider.callbacks(tp, "provision") == []
    problem = (await provider.access(tp)).json()
    assert problem["status"] == 409 and problem["errors"] == [{"field": "step", "message": "failed"}]
    return doc.reason


async def test_an_unknown_edc_asset_id(start_provider: StartProvider, js: JetStreamContext) -> None:
    provider = await start_provider()
    transfer = await provider.begin(asset_id="no-such-asset")
    reason = await _failed(provider, js, transfer.id, "asset")
    assert "unknown EDC asset id 'no-such-asset'" in reason


async def test_an_asset_that_fits_no_site(start_provider: StartProvider, js: JetStreamContext) -> None:
    provider = await start_provider("0.18")
    transfer = await provider.begin(asset_id="carla-minimal")  # needs a GPU; this machine's site has none
    reason = await _failed(provider, js, transfer.id, "deployment")
    assert reason.startswith("no site fits: local:") and "1 gpu > 0" in reason
    deployment = (await provider.store.find(DeploymentDocument))[0]
    # Failed, then cleaned up with the rest of the provisioning.
    assert [h.to for h in deployment.history] == ["requested", "failed", "deleting", "deleted"]
    assert deployment.site is None and deployment.reason == reason


async def test_a_deployment_that_never_becomes_ready(start_provider: StartProvider, js: JetStreamContext) -> None:
    provider = await start_provider(fault_points="deployment.deploy=sleep:30", deploy_timeout_seconds=0.5)
    transfer = await provider.begin()
    reason = await _failed(provider, js, transfer.id, "deployment")
    assert reason == "not ready within 0.5s on site local"


async def test_a_transfer_the_connector_does_not_know(start_provider: StartProvider, js: JetStreamContext) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    stranger = provider.sim.ledger.new_transfer("shell-count", "did:web:x.example")
    del provider.sim.ledger.transfers[stranger.id]
    await provider.sim.send_provisioner_request(stranger, "provision")
    doc = await provider.reaches(stranger.id, "failed")
    assert doc.failed_step == "negotiation" and "not finalized at the connector" in (doc.reason or "")
    # The connector answers 404 to callbacks for a transfer it does not know: recorded, nothing else breaks.
    await provider.reaches(transfer.id, "granted")
