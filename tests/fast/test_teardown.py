"""Teardown in memory: deprovision -> token revoked -> runs stopped -> deployment deleted -> consumer
deprovisioned, and released once its runs' results are out."""

from __future__ import annotations

from events import subjects as s
from events.payloads.deployment import DeploymentDeleted, DeploymentDeleteRequested
from events.payloads.edc import EdcTransferTerminated
from handlers.provisioning.common import deployment_id_for
from inprocess.system import InProcessSystem
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument
from schemas.run import RunDocument
from tests.fast.conftest import TENANT, deprovision, provision, publish, request_run, states


async def test_a_deprovision_tears_everything_down_once(system: InProcessSystem) -> None:
    await provision(system, "tp-1")
    await request_run(system, "r-1", tp="tp-1")
    await deprovision(system, "tp-1")

    assert await states(system, ProvisionDocument, "tp-1") == [
        "requested",
        "deploying",
        "granting",
        "granted",
        "deprovisioning",
        "deprovisioned",
    ]
    assert await states(system, AccessGrantDocument, "tp-1") == ["active", "revoked"]
    assert await states(system, RunDocument, "r-1") == ["queued", "pending", "running", "stopped"]
    dep_id = deployment_id_for("tp-1")
    assert await states(system, DeploymentDocument, dep_id) == [
        "requested",
        "deploying",
        "ready",
        "deleting",
        "deleted",
    ]
    assert system.deployments.deployed == {} and system.deployments.deletes == [dep_id]
    for subject in (
        s.ACCESS_REVOKED,
        s.RUN_STOP_REQUESTED,
        s.RUN_STOPPED,
        s.DEPLOYMENT_DELETE_REQUESTED,
        s.DEPLOYMENT_DELETED,
        s.CONSUMER_DEPROVISIONED,
        s.CONSUMER_RELEASED,
    ):
        assert len(system.bus.of(subject)) == 1, subject
    order = [e.type for e in system.bus.stream]
    assert order.index(s.ACCESS_REVOKED) < order.index(s.DEPLOYMENT_DELETED) < order.index(s.CONSUMER_DEPROVISIONED)
    assert order.index(s.RESULT_PUBLISHED) < order.index(s.CONSUMER_RELEASED)
    (answer,) = system.edc.deprovisioned_calls
    assert answer.error is None
    # Releasing is idempotent on the backend: each trigger (deprovisioned, each result) may ask again.
    assert {(c, tuple(runs)) for c, runs in system.compute.released} == {(TENANT, ("r-1",))}
    assert system.bus.dead_letters == []


async def test_a_terminated_transfer_is_torn_down_without_a_callback(system: InProcessSystem) -> None:
    await provision(system, "tp-2")
    ended = EdcTransferTerminated(
        connector="default",
        edc_event_id="e-1",
        edc_type="TransferProcessTerminated",
        transfer_process_id="tp-2",
        reason="simulated",
    )
    await publish(system, ended.subject, ended)

    doc = await system.store.get(ProvisionDocument, "tp-2")
    assert doc is not None and doc.state == "deprovisioned"
    assert doc.history[-1].reason == "transfer terminated: simulated"
    assert system.edc.deprovisioned_calls == []
    assert len(system.bus.of(s.CONSUMER_DEPROVISIONED)) == 1


async def test_a_deprovision_before_the_provision_request_leaves_nothing_to_provision(
    system: InProcessSystem,
) -> None:
    await deprovision(system, "tp-3")
    await provision(system, "tp-3")

    doc = await system.store.get(ProvisionDocument, "tp-3")
    assert doc is not None and doc.state == "deprovisioned"
    assert system.bus.of(s.DEPLOYMENT_REQUESTED) == [] and system.deployments.deploys == []
    # Nobody was called for the unknown transfer; its provision request, once here, is answered (once).
    assert len(system.edc.deprovisioned_calls) == 1 and system.edc.deprovisioned_calls[0].error is None


async def test_out_of_order_teardown_facts_leave_a_live_transfer_alone(system: InProcessSystem) -> None:
    await provision(system, "tp-4")
    granted = await system.store.get(ProvisionDocument, "tp-4")
    assert granted is not None and granted.deployment_id is not None
    dep = await system.store.get(DeploymentDocument, granted.deployment_id)
    await publish(
        system,
        s.DEPLOYMENT_DELETED,
        DeploymentDeleted(deployment_id=granted.deployment_id, transfer_process_id="tp-4", consumer_id=TENANT),
    )
    await publish(
        system,
        s.DEPLOYMENT_DELETE_REQUESTED,
        DeploymentDeleteRequested(deployment_id="no-such-deployment", transfer_process_id="tp-x", consumer_id="c"),
    )
    assert await system.store.get(ProvisionDocument, "tp-4") == granted
    assert await system.store.get(DeploymentDocument, granted.deployment_id) == dep
    assert system.bus.of(s.CONSUMER_DEPROVISIONED) == [] and system.deployments.deletes == []


async def test_every_teardown_event_redelivered_after_the_end_changes_nothing(system: InProcessSystem) -> None:
    await provision(system, "tp-5")
    await request_run(system, "r-5", tp="tp-5")
    await deprovision(system, "tp-5")
    before = await system.store.get(ProvisionDocument, "tp-5")
    stored = list(system.bus.stream)
    calls = len(system.edc.deprovisioned_calls)
    for event in stored:
        system.bus.redeliver(event)
    await system.bus.settle()

    assert system.bus.stream == stored
    assert await system.store.get(ProvisionDocument, "tp-5") == before
    assert len(system.edc.provisioned_calls) == 1 and len(system.deployments.deploys) == 1
    # The deprovision request redelivered finds the transfer torn down and its request answered: not again.
    assert len(system.edc.deprovisioned_calls) == calls == 1
    assert {call.error for call in system.edc.deprovisioned_calls} == {None}
    assert len(system.bus.of(s.CONSUMER_RELEASED)) == 1
