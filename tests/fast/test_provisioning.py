"""Provisioning in memory: edc.provision.requested -> deployment -> asset registered -> access granted, and
the ways it fails."""

from __future__ import annotations

import hashlib

from events import subjects as s
from events.payloads.deployment import DeploymentReady
from handlers.provisioning.common import deployment_id_for
from handlers.subscriptions import SUBSCRIPTIONS
from inprocess.system import InProcessSystem
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument
from tests.fast.conftest import CONSUMER, TENANT, provision, publish, states, types

GRANTED_FLOW = [
    s.EDC_PROVISION_REQUESTED,
    s.DEPLOYMENT_REQUESTED,
    s.DEPLOYMENT_READY,
    s.ASSET_REGISTERED,
    s.ACCESS_GRANTED,
]


async def test_a_provision_request_ends_with_access_granted_once(system: InProcessSystem) -> None:
    await provision(system, "tp-1")

    assert types(system) == GRANTED_FLOW
    assert await states(system, ProvisionDocument, "tp-1") == [
        "requested",
        "deploying",
        "granting",
        "granted",
    ]
    dep_id = deployment_id_for("tp-1")
    assert await states(system, DeploymentDocument, dep_id) == ["requested", "deploying", "ready"]
    dep = await system.store.get(DeploymentDocument, dep_id)
    assert dep is not None and dep.registered_assets == [{"asset_id": "shell-count", "version": 1}]
    grant = await system.store.get(AccessGrantDocument, "tp-1")
    assert grant is not None and grant.state == "active" and grant.consumer_id == TENANT
    assert system.deployments.deploys == [dep_id]
    (call,) = system.edc.provisioned_calls
    assert call.access.base_url == dep.workflow_api_url
    # Only the token's hash is stored; the one the connector got matches it.
    token = call.access.auth_code.removeprefix("Bearer ")
    assert hashlib.sha256(token.encode()).hexdigest() == grant.token_sha256
    assert system.bus.dead_letters == []


async def test_an_unknown_asset_fails_at_the_asset_step_and_tells_the_connector(system: InProcessSystem) -> None:
    await provision(system, "tp-2", asset="no-such-asset")

    doc = await system.store.get(ProvisionDocument, "tp-2")
    assert doc is not None and [h.to for h in doc.history] == ["requested", "failed"]
    assert doc.failed_step == "asset" and "no-such-asset" in (doc.reason or "")
    assert types(system) == [s.EDC_PROVISION_REQUESTED, s.CONSUMER_PROVISIONING_FAILED]
    assert system.edc.provisioned_calls == []
    (answer,) = system.edc.deprovisioned_calls
    assert answer.error is not None and answer.error.startswith("asset:")
    assert system.deployments.deploys == []


async def test_an_asset_no_site_fits_fails_the_deployment_and_cleans_it_up(system: InProcessSystem) -> None:
    await provision(system, "tp-3", asset="gpu-sim")

    doc = await system.store.get(ProvisionDocument, "tp-3")
    assert doc is not None and [h.to for h in doc.history] == ["requested", "deploying", "failed"]
    assert doc.failed_step == "deployment" and "no site fits" in (doc.reason or "")
    dep_id = deployment_id_for("tp-3")
    assert await states(system, DeploymentDocument, dep_id) == ["requested", "failed", "deleting", "deleted"]
    assert types(system) == [
        s.EDC_PROVISION_REQUESTED,
        s.DEPLOYMENT_REQUESTED,
        s.DEPLOYMENT_FAILED,
        s.DEPLOYMENT_DELETE_REQUESTED,
        s.CONSUMER_PROVISIONING_FAILED,
        s.DEPLOYMENT_DELETED,
    ]
    assert system.deployments.deploys == [] and system.edc.provisioned_calls == []
    # A redelivered deployment.failed tells the connector again, with the same answer: the callback is
    # at-least-once (a crash between recording the failure and the call must not lose it).
    answers = {call.error for call in system.edc.deprovisioned_calls}
    assert len(answers) == 1 and next(iter(answers), "").startswith("deployment:")  # type: ignore[union-attr]


async def test_a_transfer_the_connector_does_not_know_fails_at_the_negotiation(system: InProcessSystem) -> None:
    await provision(system, "tp-4", negotiated=False)

    doc = await system.store.get(ProvisionDocument, "tp-4")
    assert doc is not None and [h.to for h in doc.history] == ["requested", "failed"]
    assert doc.failed_step == "negotiation"
    assert types(system) == [s.EDC_PROVISION_REQUESTED, s.CONSUMER_PROVISIONING_FAILED]
    assert len(system.edc.deprovisioned_calls) == 1 and system.deployments.deploys == []


async def test_deployment_ready_is_consumed_once_and_a_late_copy_changes_nothing(system: InProcessSystem) -> None:
    """wf.deployment.ready is the assets handler's alone; the provisioning moves on at wf.asset.registered, so
    no step has to make up for another overtaking it. A copy delivered again after the grant changes nothing."""
    assert [sub.durable for sub in SUBSCRIPTIONS if sub.subject == s.DEPLOYMENT_READY] == ["assets-deployment-ready"]
    await provision(system, "tp-6")
    granted = await system.store.get(ProvisionDocument, "tp-6")
    assert granted is not None and granted.state == "granted"

    (ready,) = system.bus.of(s.DEPLOYMENT_READY)
    assert system.bus.redeliver(ready) == 1
    await system.bus.settle()
    assert await system.store.get(ProvisionDocument, "tp-6") == granted
    assert types(system) == GRANTED_FLOW and len(system.edc.provisioned_calls) == 1


async def test_a_forged_ready_for_an_unknown_deployment_changes_nothing(system: InProcessSystem) -> None:
    await provision(system, "tp-7")
    before = await system.store.get(ProvisionDocument, "tp-7")
    ready = DeploymentReady(
        deployment_id="dep-forged",
        transfer_process_id="tp-7",
        consumer_id=CONSUMER,
        asset_id="shell-count",
        site="local",
        backend="local",
        workflow_api_url="http://elsewhere.test",
    )
    await publish(system, s.DEPLOYMENT_READY, ready)
    assert await system.store.get(ProvisionDocument, "tp-7") == before
    assert len(system.bus.of(s.ASSET_REGISTERED)) == 1 and len(system.edc.provisioned_calls) == 1


async def test_every_stored_event_redelivered_after_the_grant_changes_nothing(system: InProcessSystem) -> None:
    await provision(system, "tp-8")
    provision_doc = await system.store.get(ProvisionDocument, "tp-8")
    grant = await system.store.get(AccessGrantDocument, "tp-8")
    for event in list(system.bus.stream):
        system.bus.redeliver(event)
    await system.bus.settle()

    assert types(system) == GRANTED_FLOW
    assert await system.store.get(ProvisionDocument, "tp-8") == provision_doc
    assert await system.store.get(AccessGrantDocument, "tp-8") == grant
    assert len(system.edc.provisioned_calls) == 1 and len(system.deployments.deploys) == 1
