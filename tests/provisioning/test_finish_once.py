"""The connector is answered once per request: two handlers finishing the same teardown or grant at once (the
deployment's deletion and a second end of the transfer, or an event redelivered while its first replica was
paused), or one taking over from a handler killed right after calling back. Against the real store and leases."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.mongo_leases import MongoLeases
from adapters.mongo_store import MongoStateStore
from devstack import StackEndpoints
from events.envelope import Envelope, new_event
from events.payloads.asset import AssetRegistered
from handlers.context import HandlerContext
from handlers.provisioning.common import target_to_store
from handlers.provisioning.grant import on_asset_registered
from handlers.provisioning.teardown import TeardownFinishing, answer_if_waiting, finish_teardown
from inprocess.doubles import FakeEdc
from ports.edc import AccessAddress, ProvisionTarget, TransferProcessInfo
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument


class SlowEdc(FakeEdc):
    """A connector that takes a moment to answer: long enough for a second replica to arrive meanwhile."""

    async def deprovisioned(
        self, target: ProvisionTarget, *, provisioned_resource_id: str | None = None, error: str | None = None
    ) -> None:
        await asyncio.sleep(0.3)
        await super().deprovisioned(target, provisioned_resource_id=provisioned_resource_id, error=error)


class Published:
    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []

    async def publish(self, event: Envelope[Any]) -> None:
        self.events.append(event)


@pytest.fixture
async def store(stack: StackEndpoints) -> AsyncIterator[MongoStateStore]:
    mongo = MongoStateStore.connect(stack.mongo, f"finish_{uuid.uuid4().hex[:8]}")
    yield mongo
    await mongo.close()


async def test_two_replicas_finishing_one_teardown_call_the_connector_once(store: MongoStateStore) -> None:
    tp = f"tp-{uuid.uuid4()}"
    target = ProvisionTarget("default", "control-plane-http", tp, "http://connector.example/callback")
    doc = ProvisionDocument(id=tp, state="requested", connector="default", deprovision_callback=target_to_store(target))
    await store.create(doc, event_id="e-1")
    await store.transition(ProvisionDocument, tp, "deprovisioning", event_id="e-2")
    edc, events, leases = SlowEdc(), Published(), MongoLeases(store.db)
    replicas = [HandlerContext(store=store, events=events, leases=leases, holder=name, edc=edc) for name in ("a", "b")]

    outcomes = await asyncio.gather(*(finish_teardown(tp, ctx) for ctx in replicas), return_exceptions=True)

    assert len(edc.deprovisioned_calls) == 1
    # The other replica's event goes back to the bus; its retry finds the transfer deprovisioned and does nothing.
    assert sum(isinstance(o, TeardownFinishing) for o in outcomes) == 1
    await finish_teardown(tp, replicas[1])
    assert len(edc.deprovisioned_calls) == 1
    stored = await store.get(ProvisionDocument, tp)
    assert stored is not None and stored.state == "deprovisioned"
    assert [e.type for e in events.events] == ["wf.consumer.deprovisioned"]


class RequestArrivesMeanwhile:
    """The store as a teardown sees it while the connector's deprovision request is recorded between its read of
    the transfer and its last transition (the transfer's end and the request come together, as EDC sends them)."""

    def __init__(self, store: MongoStateStore, fields: dict[str, Any]) -> None:
        self.store = store
        self.fields = fields
        self.db = store.db

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def transition(self, kind: Any, doc_id: str, to: str, **kwargs: Any) -> Any:
        if to == "deprovisioned" and self.fields:
            await self.store.set_fields(ProvisionDocument, doc_id, self.fields)
            self.fields = {}
        return await self.store.transition(kind, doc_id, to, **kwargs)


async def test_a_request_recorded_while_the_teardown_finishes_is_answered_once(store: MongoStateStore) -> None:
    tp = f"tp-{uuid.uuid4()}"
    target = ProvisionTarget("default", "control-plane-http", tp, "http://connector.example/callback")
    await store.create(ProvisionDocument(id=tp, state="requested", connector="default"), event_id="e-1")
    await store.transition(ProvisionDocument, tp, "deprovisioning", event_id="e-2")
    request = {"deprovision_callback": target_to_store(target), "deprovision_request_id": "request-1"}
    edc, events, leases = SlowEdc(), Published(), MongoLeases(store.db)
    racing = RequestArrivesMeanwhile(store, request)
    ctx = HandlerContext(store=racing, events=events, leases=leases, holder="a", edc=edc)

    await finish_teardown(tp, ctx)
    # The request's own handler then finds the transfer deprovisioned, and its event may come twice.
    other = HandlerContext(store=store, events=events, leases=leases, holder="b", edc=edc)
    await answer_if_waiting(tp, other)
    await answer_if_waiting(tp, other)

    assert len(edc.deprovisioned_calls) == 1
    stored = await store.get(ProvisionDocument, tp)
    assert stored is not None and stored.state == "deprovisioned" and stored.deprovision_answered == "request-1"


@pytest.mark.parametrize(("connector_state", "answers"), [("DEPROVISIONED", 0), ("DEPROVISIONING", 1)])
async def test_a_handler_taking_over_after_one_died_having_answered_asks_the_connector_first(
    store: MongoStateStore, connector_state: str, answers: int
) -> None:
    tp = f"tp-{uuid.uuid4()}"
    target = ProvisionTarget("default", "control-plane-http", tp, "http://connector.example/callback")
    await store.create(ProvisionDocument(id=tp, state="requested", connector="default"), event_id="e-1")
    await store.transition(ProvisionDocument, tp, "deprovisioning", event_id="e-2")
    # The handler before called the connector back (its intent recorded) and was killed before recording it.
    await store.set_fields(
        ProvisionDocument,
        tp,
        {
            "deprovision_callback": target_to_store(target),
            "deprovision_request_id": "request-1",
            "deprovision_answering": "request-1",
        },
    )
    edc = SlowEdc()
    edc.transfers[tp] = TransferProcessInfo(tp, connector_state, "chaos-marker", "agreement-1")
    ctx = HandlerContext(store=store, events=Published(), leases=MongoLeases(store.db), holder="b", edc=edc)

    await finish_teardown(tp, ctx)

    assert len(edc.deprovisioned_calls) == answers
    stored = await store.get(ProvisionDocument, tp)
    assert stored is not None and stored.state == "deprovisioned" and stored.deprovision_answered == "request-1"


async def _granting(store: MongoStateStore) -> tuple[str, Envelope[AssetRegistered]]:
    """A transfer whose consumer's WorkflowApi is ready and its asset registered: what the grant answers."""
    tp = f"tp-{uuid.uuid4()}"
    target = ProvisionTarget("default", "control-plane-http", tp, "http://connector.example/callback")
    doc = ProvisionDocument(
        id=tp,
        state="requested",
        connector="default",
        consumer_id="default/did:web:c.example",
        target=target_to_store(target),
        deployment_id=f"dep-{tp}",
    )
    await store.create(doc, event_id="e-1")
    await store.transition(ProvisionDocument, tp, "deploying", event_id="e-2")
    deployment = DeploymentDocument(
        id=f"dep-{tp}",
        state="requested",
        transfer_process_id=tp,
        consumer_id="default/did:web:c.example",
        workflow_api_url="http://127.0.0.1:9/api",
    )
    await store.create(deployment, event_id="e-3")
    registered = AssetRegistered(
        transfer_process_id=tp,
        consumer_id="default/did:web:c.example",
        deployment_id=f"dep-{tp}",
        asset_id="chaos-marker",
        asset_version=1,
    )
    return tp, new_event(registered.subject, registered, subject=tp)


async def test_the_same_grant_handled_twice_at_once_calls_the_connector_once(store: MongoStateStore) -> None:
    tp, event = await _granting(store)
    edc = SlowSentEdc()
    leases = MongoLeases(store.db)
    replicas = [
        HandlerContext(store=store, events=Published(), leases=leases, holder=name, edc=edc) for name in ("a", "b")
    ]

    # The event redelivered to a second replica while the first still answers (paused past the ack wait).
    outcomes = await asyncio.gather(*(on_asset_registered(event, ctx) for ctx in replicas), return_exceptions=True)

    assert len(edc.provisioned_calls) == 1
    assert sum(isinstance(o, TeardownFinishing) for o in outcomes) == 1
    stored = await store.get(ProvisionDocument, tp)
    grant = await store.get(AccessGrantDocument, tp)
    assert stored is not None and stored.state == "granted"
    # The token the connector got is the one whose hash is kept.
    (call,) = edc.provisioned_calls
    token = call.access.auth_code.removeprefix("Bearer ")
    assert grant is not None and grant.token_sha256 == hashlib.sha256(token.encode()).hexdigest()


async def test_a_grant_taken_over_after_its_handler_died_having_called_back_is_not_sent_again(
    store: MongoStateStore,
) -> None:
    tp, event = await _granting(store)
    edc = SlowSentEdc()
    first = HandlerContext(store=store, events=Published(), leases=MongoLeases(store.db), holder="a", edc=edc)
    edc.die_after_call = True
    with pytest.raises(Died):
        await on_asset_registered(event, first)
    edc.transfers[tp] = TransferProcessInfo(tp, "PROVISIONED", "chaos-marker", "agreement-1")
    edc.die_after_call = False
    second = HandlerContext(store=store, events=Published(), leases=MongoLeases(store.db), holder="b", edc=edc)

    await on_asset_registered(event, second)

    assert len(edc.provisioned_calls) == 1
    stored = await store.get(ProvisionDocument, tp)
    assert stored is not None and stored.state == "granted"


class Died(Exception):
    """The handler's process killed right after the connector answered."""


class SlowSentEdc(FakeEdc):
    die_after_call = False

    async def provisioned(self, target: ProvisionTarget, access: AccessAddress, *, resource_name: str) -> None:
        await asyncio.sleep(0.3)
        await super().provisioned(target, access, resource_name=resource_name)
        if self.die_after_call:
            raise Died
