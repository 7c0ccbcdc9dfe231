"""The StateStore contract, written once and run against every store (collected where a `state_store` fixture
is defined): MongoDB in tests/backbone/test_store.py, the in-memory double in tests/fast/test_memory_store.py.
Whatever the double gets wrong here, the fast flow tests would believe.

Each of those modules also defines `raw_documents`: the stored documents as the store keeps them, bypassing the
port, to plant what an earlier version wrote and to see what a refused write left behind."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest
from pydantic import ValidationError

from ports.store import Outcome, StateStore
from schemas.documents import utcnow
from schemas.inputs import InputDocument
from schemas.provisioning import DeploymentDocument, DeploymentState, ResultDocument, ResultState
from schemas.run import RunDocument, RunState
from schemas.state_machine import TransitionRejected


class RawDocuments(Protocol):
    """A store's documents as stored, not through the port."""

    async def insert(self, collection: str, raw: dict[str, Any]) -> None: ...

    async def find_one(self, collection: str, doc_id: str) -> dict[str, Any] | None: ...


def run_doc(run_id: str, state: RunState = RunState.QUEUED, **fields: object) -> RunDocument:
    return RunDocument(id=run_id, state=state, consumer_id="c", asset_id="a", **fields)  # type: ignore[arg-type]


async def test_create_is_once_per_id(state_store: StateStore) -> None:
    assert await state_store.create(run_doc("s-1"), event_id="e1")
    assert not await state_store.create(run_doc("s-1"), event_id="e2")
    doc = await state_store.get(RunDocument, "s-1")
    assert doc is not None and [h.event_id for h in doc.history] == ["e1"]


async def test_create_refuses_a_state_that_is_not_initial(state_store: StateStore) -> None:
    with pytest.raises(TransitionRejected):
        await state_store.create(run_doc("s-0", RunState.RUNNING), event_id="e1")
    assert await state_store.get(RunDocument, "s-0") is None


async def test_transition_applies_once_and_records_history(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-2"), event_id="e1")
    first = await state_store.transition(RunDocument, "s-2", RunState.PENDING, event_id="e2", fields={"handle": "h"})
    again = await state_store.transition(
        RunDocument, "s-2", RunState.PENDING, event_id="e2", fields={"handle": "other"}
    )
    assert (first.outcome, again.outcome) == (Outcome.APPLIED, Outcome.ALREADY_APPLIED)
    assert (first.settled, again.settled, first.changed, again.changed) == (True, True, True, False)
    doc = await state_store.get(RunDocument, "s-2")
    assert doc is not None and doc.state == "pending" and doc.handle == "h"
    assert [(h.from_, h.to, h.event_id) for h in doc.history] == [
        (None, "queued", "e1"),
        ("queued", "pending", "e2"),
    ]
    assert doc.history[1].at >= doc.history[0].at


async def test_an_applied_event_reports_already_applied_even_from_a_later_state(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-7"), event_id="e1")
    await state_store.transition(RunDocument, "s-7", RunState.PENDING, event_id="e2")
    await state_store.transition(RunDocument, "s-7", RunState.RUNNING, event_id="e3")
    late = await state_store.transition(RunDocument, "s-7", RunState.PENDING, event_id="e2")
    assert (late.outcome, late.state, late.settled) == (Outcome.ALREADY_APPLIED, "running", True)


async def test_out_of_order_and_unknown_are_reported_not_applied(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-3"), event_id="e1")
    rejected = await state_store.transition(RunDocument, "s-3", RunState.SUCCEEDED, event_id="e9")
    missing = await state_store.transition(RunDocument, "nope", RunState.RUNNING, event_id="e9")
    assert (rejected.outcome, rejected.state, rejected.settled) == (Outcome.REJECTED, "queued", False)
    assert (missing.outcome, missing.state) == (Outcome.MISSING, None)
    doc = await state_store.get(RunDocument, "s-3")
    assert doc is not None and doc.state == "queued" and len(doc.history) == 1


async def test_racing_writers_apply_exactly_one_terminal_transition(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-4"), event_id="e1")
    await state_store.transition(RunDocument, "s-4", RunState.PENDING, event_id="e2")
    await state_store.transition(RunDocument, "s-4", RunState.RUNNING, event_id="e3")
    targets = [RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.TIMED_OUT] * 4
    results = await asyncio.gather(
        *(state_store.transition(RunDocument, "s-4", to, event_id=f"race-{i}") for i, to in enumerate(targets))
    )
    applied = [r for r in results if r.outcome is Outcome.APPLIED]
    assert len(applied) == 1
    assert all(r.outcome is Outcome.REJECTED for r in results if r is not applied[0])
    doc = await state_store.get(RunDocument, "s-4")
    assert doc is not None and len(doc.history) == 4 and doc.state == applied[0].state


async def test_values_that_look_like_field_paths_are_stored_as_given(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-5"), event_id="e1")
    result = await state_store.transition(
        RunDocument, "s-5", RunState.PENDING, event_id="e2", reason="$state", fields={"handle": "$history"}
    )
    assert result.outcome is Outcome.APPLIED
    doc = await state_store.get(RunDocument, "s-5")
    assert doc is not None and doc.handle == "$history" and doc.history[-1].reason == "$state"


async def test_one_event_may_cause_several_transitions_each_once(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-6"), event_id="e1")
    first = await state_store.transition(RunDocument, "s-6", RunState.PENDING, event_id="e1")
    second = await state_store.transition(RunDocument, "s-6", RunState.RUNNING, event_id="e1")
    again = await state_store.transition(RunDocument, "s-6", RunState.RUNNING, event_id="e1")
    assert (first.outcome, second.outcome, again.outcome) == (Outcome.APPLIED, Outcome.APPLIED, Outcome.ALREADY_APPLIED)
    doc = await state_store.get(RunDocument, "s-6")
    assert doc is not None and [h.to for h in doc.history] == ["queued", "pending", "running"]


async def test_transition_fields_cannot_override_state_or_history(state_store: StateStore) -> None:
    await state_store.create(run_doc("s-8"), event_id="e1")
    await state_store.transition(
        RunDocument, "s-8", RunState.PENDING, event_id="e2", fields={"state": "succeeded", "history": []}
    )
    doc = await state_store.get(RunDocument, "s-8")
    assert doc is not None and doc.state == "pending" and len(doc.history) == 2


async def test_set_fields_leaves_state_and_history_to_transitions(state_store: StateStore) -> None:
    await state_store.create(run_doc("f-1"), event_id="e1")
    before = await state_store.get(RunDocument, "f-1")
    assert await state_store.set_fields(RunDocument, "f-1", {"stop_requested": "because", "announced": False})
    assert not await state_store.set_fields(RunDocument, "nope", {"stop_requested": "x"})
    with pytest.raises(ValueError, match="transition"):
        await state_store.set_fields(RunDocument, "f-1", {"state": "running"})
    with pytest.raises(ValueError, match="transition"):
        await state_store.set_fields(RunDocument, "f-1", {"history": []})
    doc = await state_store.get(RunDocument, "f-1")
    assert doc is not None and before is not None
    assert (doc.stop_requested, doc.announced, doc.state, doc.history) == ("because", False, "queued", before.history)
    assert doc.updated_at >= before.updated_at and doc.created_at == before.created_at


async def test_what_get_returns_is_a_copy(state_store: StateStore) -> None:
    await state_store.create(run_doc("c-1"), event_id="e1")
    doc = await state_store.get(RunDocument, "c-1")
    assert doc is not None
    doc.parameters["x"] = "changed"
    doc.history.clear()
    fresh = await state_store.get(RunDocument, "c-1")
    assert fresh is not None and fresh.parameters == {} and len(fresh.history) == 1


async def test_times_come_back_in_utc_at_millisecond_precision(state_store: StateStore) -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    await state_store.create(run_doc("t-1", not_before=at), event_id="e1")
    doc = await state_store.get(RunDocument, "t-1")
    assert doc is not None and doc.not_before == datetime(2026, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert doc.history[0].at.tzinfo is not None and doc.history[0].at.microsecond % 1000 == 0


async def test_find_and_count_filter_by_state_and_equal_fields(state_store: StateStore) -> None:
    await state_store.create(run_doc("q-1", site="a"), event_id="e1")
    await state_store.create(run_doc("q-2", site="b"), event_id="e2")
    await state_store.create(run_doc("q-3", site="a", transfer_process_id="tp"), event_id="e3")
    await state_store.transition(RunDocument, "q-3", RunState.PENDING, event_id="e4")

    assert {d.id for d in await state_store.find(RunDocument, site="a")} == {"q-1", "q-3"}
    assert [d.id for d in await state_store.find(RunDocument, states=[RunState.PENDING])] == ["q-3"]
    assert [d.id for d in await state_store.find(RunDocument, states=[RunState.QUEUED], site="a")] == ["q-1"]
    assert await state_store.count(RunDocument, states=[RunState.QUEUED]) == 2
    assert await state_store.count(RunDocument, states=[]) == 0
    assert await state_store.count(RunDocument, site="c") == 0
    # None matches a null field, as MongoDB's equality does.
    assert {d.id for d in await state_store.find(RunDocument, transfer_process_id=None)} == {"q-1", "q-2"}
    assert await state_store.count(DeploymentDocument) == 0


async def test_find_oldest_first_and_limits(state_store: StateStore) -> None:
    for i in range(5):
        await state_store.create(run_doc(f"o-{i}"), event_id=f"e{i}")
    oldest = await state_store.find(RunDocument, oldest_first=True, limit=3)
    assert [d.id for d in oldest] == ["o-0", "o-1", "o-2"]
    assert len(await state_store.find(RunDocument, limit=0)) == 5
    assert [d.id for d in await state_store.find(RunDocument, oldest_first=True)] == [f"o-{i}" for i in range(5)]


async def test_find_matches_a_value_inside_a_list_field(state_store: StateStore) -> None:
    dep = DeploymentDocument(
        id="d-1",
        state=DeploymentState.REQUESTED,
        transfer_process_id="tp",
        consumer_id="c",
        registered_assets=[{"asset_id": "x", "version": 1}],
    )
    await state_store.create(dep, event_id="e1")
    assert [d.id for d in await state_store.find(DeploymentDocument, registered_assets={"asset_id": "x", "version": 1})]
    assert await state_store.count(DeploymentDocument, registered_assets={"version": 1, "asset_id": "x"}) == 0


async def test_an_undeclared_field_is_refused_on_every_write(
    state_store: StateStore, raw_documents: RawDocuments
) -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        RunDocument(id="u-x", state=RunState.QUEUED, consumer_id="c", asset_id="a", colour="red")  # type: ignore[call-arg]
    await state_store.create(run_doc("u-1"), event_id="e1")
    with pytest.raises(ValueError, match="RunDocument declares no field colour"):
        await state_store.set_fields(RunDocument, "u-1", {"colour": "red"})
    with pytest.raises(ValueError, match="declares no field colour"):
        await state_store.transition(RunDocument, "u-1", RunState.PENDING, event_id="e2", fields={"colour": "red"})
    doc = await state_store.get(RunDocument, "u-1")
    assert doc is not None and doc.state == "queued" and len(doc.history) == 1
    assert "colour" not in (await raw_documents.find_one("runs", "u-1") or {})


async def test_documents_of_earlier_versions_still_load(state_store: StateStore, raw_documents: RawDocuments) -> None:
    """What earlier versions wrote without declaring it (a result's log key, a presigned upload's announcement)
    is declared now; a field no version declares any more is left behind on read."""
    now = utcnow()
    entry = {"from": None, "to": "published", "at": now, "event_id": "old"}
    await raw_documents.insert(
        "results",
        {
            "_id": "old-result",
            "state": "published",
            "consumer_id": "c",
            "manifest_key": "results/c/old-result/manifest.json",
            "files": [],
            "log_key": "results/c/old-result/log.txt",
            "retired_field": 1,
            "history": [entry],
            "created_at": now,
            "updated_at": now,
        },
    )
    result = await state_store.get(ResultDocument, "old-result")
    assert result is not None and result.state == ResultState.PUBLISHED
    assert result.log_key == "results/c/old-result/log.txt"
    await raw_documents.insert(
        "inputs",
        {
            "_id": "old-input",
            "state": "uploading",
            "consumer_id": "c",
            "name": "big",
            "kind": "file",
            "prefix": "inputs/c/old-input/",
            "expected": {"key": "inputs/c/old-input/big", "path": "big", "size": 3, "sha256": None},
            "history": [],
            "created_at": now,
            "updated_at": now,
        },
    )
    found = await state_store.find(InputDocument, consumer_id="c")
    assert [d.expected["path"] for d in found if d.id == "old-input" and d.expected] == ["big"]
