"""Re-sent requests, deprovisioning that overtakes provisioning, and a transfer that ends without asking."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from nats.js import JetStreamContext

from events import subjects as s
from events.envelope import Envelope, new_event
from events.payloads.asset import AssetRegistered
from events.payloads.consumer import ConsumerDeprovisioned
from events.payloads.deployment import (
    DeploymentDeleted,
    DeploymentDeleteRequested,
    DeploymentReady,
    DeploymentRequested,
)
from events.payloads.edc import EdcProvisionRequested
from events.subjects import STREAM
from handlers.assets import register
from handlers.context import HandlerContext
from handlers.deployment import deploy, remove
from handlers.jobs import release
from handlers.provisioning import grant, request, teardown
from handlers.subscriptions import HandlerFn
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument
from tests.backbone.conftest import eventually, quiet, stream_events
from tests.provisioning.conftest import TENANT, Provider, StartProvider


async def _handle_again(provider: Provider, js: JetStreamContext, steps: list[tuple[str, Any, HandlerFn]]) -> None:
    """Each step's event, as stored, handled once more by its handler: a redelivery after a crash before the ack."""
    assert provider.handlers.bus is not None
    ctx = HandlerContext(
        store=provider.store,
        events=provider.handlers.bus,
        compute=provider.handlers.compute,
        edc=provider.handlers.edc,
        assets=provider.handlers.assets,
        deployments=provider.handlers.deployments,
        sites=provider.handlers.sites,
    )
    for subject, payload, handle in steps:
        (raw,) = await stream_events(js, subject)
        await handle(Envelope[payload].model_validate(raw), ctx)  # type: ignore[valid-type]


async def _counts(js: JetStreamContext) -> Counter[str]:
    return Counter(e["type"] for e in await stream_events(js, "wf.>"))


def _record_publishes(provider: Provider) -> Counter[str]:
    """Every publish the handlers attempt, by type: JetStream drops a second publish of an id it holds, so
    only attempts show a handler that did a step twice."""
    bus = provider.handlers.bus
    assert bus is not None
    attempts: Counter[str] = Counter()
    publish = bus.publish

    async def recording(event: Envelope[Any]) -> None:
        attempts[event.type] += 1
        await publish(event)

    bus.publish = recording  # type: ignore[method-assign]
    return attempts


async def _handled(js: JetStreamContext, durable: str, subject: str) -> None:
    """Wait until the durable consumer has acked every event on `subject` stored so far."""
    last = (await js.get_last_msg(STREAM, subject)).seq or 0

    async def caught_up() -> bool:
        info = await js.consumer_info(STREAM, durable)
        delivered = info.delivered.stream_seq if info.delivered else 0
        return (delivered or 0) >= last and info.num_ack_pending == 0 and info.num_pending == 0

    await eventually(caught_up, timeout=10)


async def test_a_request_resent_after_the_duplicate_window_provisions_nothing_twice(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider()
    attempts = _record_publishes(provider)
    transfer = await provider.begin()
    before = await provider.reaches(transfer.id, "granted")
    # JetStream dropped copies inside its window; a copy arriving later has a new event id.
    original = next(e for e in await stream_events(js, s.EDC_PROVISION_REQUESTED))
    late = EdcProvisionRequested.model_validate(original["data"])
    assert provider.handlers.bus is not None
    await provider.handlers.bus.publish(new_event(s.EDC_PROVISION_REQUESTED, late, subject=transfer.id))
    await provider.sim.send_provisioner_request(transfer, "provision")
    await _handled(js, "provisioning-requested", s.EDC_PROVISION_REQUESTED)

    # Attempts, not stored events: a handler re-publishing a step under its derived id would be hidden by
    # JetStream's de-duplication, and the deployment id is derived from the transfer anyway.
    assert attempts[s.DEPLOYMENT_REQUESTED] == 1 and attempts[s.ACCESS_GRANTED] == 1, attempts
    assert len(await stream_events(js, s.EDC_PROVISION_REQUESTED)) == 2
    assert await provider.store.get(ProvisionDocument, transfer.id) == before
    assert len(provider.callbacks(transfer.id, "provision")) == 1
    assert (await provider.access(transfer.id)).status_code == 200


async def test_a_deprovision_during_provisioning_is_honoured_once_it_settles(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider(fault_points="deployment.deploy=sleep:1")
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "deploying")
    await provider.deprovision(transfer)

    doc = await provider.reaches(transfer.id, "deprovisioned")
    states = [h.to for h in doc.history]
    assert states[-3:] == ["granted", "deprovisioning", "deprovisioned"], states
    assert len(provider.callbacks(transfer.id, "provision")) == 1
    assert len(provider.callbacks(transfer.id, "deprovision")) == 1
    counts = await _counts(js)
    assert counts[s.ACCESS_REVOKED] == 1 and counts[s.CONSUMER_DEPROVISIONED] == 1, counts


async def test_a_deprovision_before_any_provision_request_leaves_nothing_to_provision(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider()
    transfer = provider.sim.ledger.new_transfer("shell-count", "did:web:early.example")
    await provider.deprovision(transfer)
    await provider.reaches(transfer.id, "deprovisioned")
    # The transfer was unknown: nobody was called back. Its provision request is answered with the end.
    assert provider.callbacks(transfer.id, "deprovision") == []

    await provider.sim.send_provisioner_request(transfer, "provision")
    assert await provider.sim.ledger.wait_for(transfer.id, "deprovision", 10) is not None
    assert len(provider.callbacks(transfer.id, "deprovision")) == 1
    counts = await _counts(js)
    assert counts[s.DEPLOYMENT_REQUESTED] == 0, counts
    assert (await provider.store.get(ProvisionDocument, transfer.id)).state == "deprovisioned"  # type: ignore[union-attr]


async def test_a_terminated_transfer_is_deprovisioned_without_a_request(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    await provider.transfer_event(transfer, "TransferProcessTerminated")

    doc = await provider.reaches(transfer.id, "deprovisioned")
    assert doc.history[-1].reason == "transfer terminated: simulated"
    assert (await provider.access(transfer.id)).json()["errors"] == [{"field": "step", "message": "deprovisioned"}]
    # Nobody asked, so nobody is answered; a deprovision request arriving now is answered at once.
    assert provider.callbacks(transfer.id, "deprovision") == []
    await provider.deprovision(transfer)
    assert await provider.sim.ledger.wait_for(transfer.id, "deprovision", 10) is not None
    assert (await _counts(js))[s.CONSUMER_DEPROVISIONED] == 1


async def test_an_invalid_edc_event_published_straight_to_nats_is_dead_lettered(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    """The edc.* subjects are a public contract a connector extension may publish to directly."""
    provider = await start_provider()
    bad = {
        "specversion": "1.0",
        "id": "ext-1",
        "type": s.EDC_PROVISION_REQUESTED,
        "data": {"connector": "default", "generation": "nats", "transfer_process_id": "has space"},
    }
    await js.publish(s.EDC_PROVISION_REQUESTED, json.dumps(bad).encode())

    async def letters() -> list[dict[str, object]]:
        return await stream_events(js, "dlq.edc.>", wait=False)

    (letter,) = await eventually(letters)
    assert letter["original_subject"] == s.EDC_PROVISION_REQUESTED
    assert "transfer_process_id" in str(letter["error"]) and "callback_address" in str(letter["error"])
    assert await provider.store.count(ProvisionDocument) == 0


async def test_redelivered_events_change_nothing(start_provider: StartProvider, js: JetStreamContext) -> None:
    """Every provisioning step handled again after it settled, as after a crash before the ack."""
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    grant_before = await provider.store.get(AccessGrantDocument, transfer.id)
    steps: list[tuple[str, Any, HandlerFn]] = [
        (s.EDC_PROVISION_REQUESTED, EdcProvisionRequested, request.on_provision_requested),
        (s.DEPLOYMENT_REQUESTED, DeploymentRequested, deploy.on_deployment_requested),
        (s.DEPLOYMENT_READY, DeploymentReady, register.on_deployment_ready),
        (s.ASSET_REGISTERED, AssetRegistered, grant.on_asset_registered),
    ]
    await _handle_again(provider, js, steps)

    counts = await _counts(js)
    assert all(n == 1 for n in counts.values()), counts
    assert await provider.store.get(AccessGrantDocument, transfer.id) == grant_before
    assert len(provider.callbacks(transfer.id, "provision")) == 1
    doc = await provider.store.get(ProvisionDocument, transfer.id)
    assert doc is not None and doc.state == "granted" and len(doc.history) == 4


async def test_redelivered_teardown_events_change_nothing(start_provider: StartProvider, js: JetStreamContext) -> None:
    """Every deprovisioning step handled again after it settled: one of each event, one callback, no new history."""
    provider = await start_provider()
    transfer = await provider.begin()
    await provider.reaches(transfer.id, "granted")
    await provider.deprovision(transfer)
    before = await provider.reaches(transfer.id, "deprovisioned")
    await quiet(js)
    steps: list[tuple[str, Any, HandlerFn]] = [
        (s.DEPLOYMENT_DELETE_REQUESTED, DeploymentDeleteRequested, remove.on_delete_requested),
        (s.DEPLOYMENT_DELETED, DeploymentDeleted, teardown.on_deployment_deleted),
        (s.CONSUMER_DEPROVISIONED, ConsumerDeprovisioned, release.on_consumer_deprovisioned),
    ]
    await _handle_again(provider, js, steps)

    counts = await _counts(js)
    for subject in (s.DEPLOYMENT_DELETE_REQUESTED, s.DEPLOYMENT_DELETED, s.CONSUMER_DEPROVISIONED, s.CONSUMER_RELEASED):
        assert counts[subject] == 1, (subject, counts)
    assert len(provider.callbacks(transfer.id, "deprovision")) == 1
    assert await provider.store.get(ProvisionDocument, transfer.id) == before


async def test_out_of_order_teardown_facts_leave_a_live_transfer_alone(
    start_provider: StartProvider, js: JetStreamContext
) -> None:
    provider = await start_provider()
    transfer = await provider.begin()
    granted = await provider.reaches(transfer.id, "granted")
    assert provider.handlers.bus is not None and granted.deployment_id is not None
    # A "deleted" fact for a live transfer's deployment (a stale or forged one), and a delete command for a
    # deployment that does not exist: neither tears anything down.
    await provider.handlers.bus.publish(
        new_event(
            s.DEPLOYMENT_DELETED,
            DeploymentDeleted(deployment_id=granted.deployment_id, transfer_process_id=transfer.id, consumer_id=TENANT),
        )
    )
    await provider.handlers.bus.publish(
        new_event(
            s.DEPLOYMENT_DELETE_REQUESTED,
            DeploymentDeleteRequested(deployment_id="no-such-deployment", transfer_process_id="tp-x", consumer_id="c"),
        )
    )
    await quiet(js)
    assert (await provider.access(transfer.id)).status_code == 200
    doc = await provider.store.get(ProvisionDocument, transfer.id)
    assert doc is not None and doc.state == "granted"
    deployment = await provider.store.get(DeploymentDocument, granted.deployment_id)
    assert deployment is not None and deployment.state == "ready"
    assert (await _counts(js))[s.CONSUMER_DEPROVISIONED] == 0
