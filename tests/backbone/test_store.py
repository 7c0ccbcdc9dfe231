"""The compare-and-set transition helper against the real MongoDB-wire server."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from adapters.mongo_store import MongoStateStore
from ports.store import Outcome
from schemas.documents import utcnow
from schemas.inputs import InputDocument
from schemas.provisioning import ResultDocument, ResultState
from schemas.registry import DOCUMENT_KINDS
from schemas.run import RunDocument, RunState


def run_doc(run_id: str, state: RunState = RunState.QUEUED) -> RunDocument:
    return RunDocument(id=run_id, state=state, consumer_id="c", asset_id="a")


async def test_create_is_once_per_id(store: MongoStateStore) -> None:
    assert await store.create(run_doc("s-1"), event_id="e1")
    assert not await store.create(run_doc("s-1"), event_id="e2")
    doc = await store.get(RunDocument, "s-1")
    assert doc is not None and [h.event_id for h in doc.history] == ["e1"]


async def test_transition_applies_once_and_records_history(store: MongoStateStore) -> None:
    await store.create(run_doc("s-2"), event_id="e1")
    first = await store.transition(RunDocument, "s-2", RunState.PENDING, event_id="e2", fields={"handle": "h"})
    again = await store.transition(RunDocument, "s-2", RunState.PENDING, event_id="e2", fields={"handle": "other"})
    assert (first.outcome, again.outcome) == (Outcome.APPLIED, Outcome.ALREADY_APPLIED)
    doc = await store.get(RunDocument, "s-2")
    assert doc is not None and doc.state == "pending" and doc.handle == "h"
    assert [(h.from_, h.to, h.event_id) for h in doc.history] == [
        (None, "queued", "e1"),
        ("queued", "pending", "e2"),
    ]
    assert doc.history[1].at >= doc.history[0].at


async def test_out_of_order_and_unknown_are_reported_not_applied(store: MongoStateStore) -> None:
    await store.create(run_doc("s-3"), event_id="e1")
    rejected = await store.transition(RunDocument, "s-3", RunState.SUCCEEDED, event_id="e9")
    missing = await store.transition(RunDocument, "nope", RunState.RUNNING, event_id="e9")
    assert (rejected.outcome, rejected.state) == (Outcome.REJECTED, "queued")
    assert missing.outcome == Outcome.MISSING
    doc = await store.get(RunDocument, "s-3")
    assert doc is not None and doc.state == "queued" and len(doc.history) == 1


async def test_racing_writers_apply_exactly_one_terminal_transition(store: MongoStateStore) -> None:
    await store.create(run_doc("s-4"), event_id="e1")
    await store.transition(RunDocument, "s-4", RunState.PENDING, event_id="e2")
    await store.transition(RunDocument, "s-4", RunState.RUNNING, event_id="e3")
    targets = [RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED, RunState.TIMED_OUT] * 4
    results = await asyncio.gather(
        *(store.transition(RunDocument, "s-4", to, event_id=f"race-{i}") for i, to in enumerate(targets))
    )
    applied = [r for r in results if r.outcome is Outcome.APPLIED]
    assert len(applied) == 1
    assert all(r.outcome is Outcome.REJECTED for r in results if r is not applied[0])
    doc = await store.get(RunDocument, "s-4")
    assert doc is not None and len(doc.history) == 4 and doc.state == applied[0].state


async def test_indexes_exist_after_start(store: MongoStateStore) -> None:
    names = {index["name"] async for index in await store.db["runs"].list_indexes()}
    assert {"state_created", "history_event_id", "consumer_id_state"} <= names


async def test_values_that_look_like_field_paths_are_stored_as_given(store: MongoStateStore) -> None:
    await store.create(run_doc("s-5"), event_id="e1")
    result = await store.transition(
        RunDocument, "s-5", RunState.PENDING, event_id="e2", reason="$state", fields={"handle": "$history"}
    )
    assert result.outcome is Outcome.APPLIED
    doc = await store.get(RunDocument, "s-5")
    assert doc is not None and doc.handle == "$history" and doc.history[-1].reason == "$state"


async def test_one_event_may_cause_several_transitions_each_once(store: MongoStateStore) -> None:
    await store.create(run_doc("s-6"), event_id="e1")
    first = await store.transition(RunDocument, "s-6", RunState.PENDING, event_id="e1")
    second = await store.transition(RunDocument, "s-6", RunState.RUNNING, event_id="e1")
    again = await store.transition(RunDocument, "s-6", RunState.RUNNING, event_id="e1")
    assert (first.outcome, second.outcome, again.outcome) == (Outcome.APPLIED, Outcome.APPLIED, Outcome.ALREADY_APPLIED)
    doc = await store.get(RunDocument, "s-6")
    assert doc is not None and [h.to for h in doc.history] == ["queued", "pending", "running"]


async def test_an_undeclared_field_is_refused_on_every_write(store: MongoStateStore) -> None:
    with pytest.raises(ValidationError, match="extra_forbidden"):
        RunDocument(id="s-x", state=RunState.QUEUED, consumer_id="c", asset_id="a", colour="red")  # type: ignore[call-arg]
    await store.create(run_doc("s-5"), event_id="e1")
    with pytest.raises(ValueError, match="RunDocument declares no field colour"):
        await store.set_fields(RunDocument, "s-5", {"colour": "red"})
    with pytest.raises(ValueError, match="declares no field colour"):
        await store.transition(RunDocument, "s-5", RunState.PENDING, event_id="e2", fields={"colour": "red"})
    doc = await store.get(RunDocument, "s-5")
    assert doc is not None and doc.state == "queued"
    assert "colour" not in (await store.db["runs"].find_one({"_id": "s-5"}) or {})


def test_every_kind_forbids_undeclared_fields() -> None:
    assert all(kind.model_config.get("extra") == "forbid" for kind in DOCUMENT_KINDS)


async def test_documents_of_earlier_versions_still_load(store: MongoStateStore) -> None:
    """What earlier versions wrote without declaring it (a result's log key, a presigned upload's announcement)
    is declared now; a field no version declares any more is left behind on read."""
    now = utcnow()
    entry = {"from": None, "to": "published", "at": now, "event_id": "old"}
    await store.db["results"].insert_one(
        {
            "_id": "s-old-result",
            "state": "published",
            "consumer_id": "c",
            "manifest_key": "results/c/s-old-result/manifest.json",
            "files": [],
            "log_key": "results/c/s-old-result/log.txt",
            "retired_field": 1,
            "history": [entry],
            "created_at": now,
            "updated_at": now,
        }
    )
    result = await store.get(ResultDocument, "s-old-result")
    assert result is not None and result.state == ResultState.PUBLISHED
    assert result.log_key == "results/c/s-old-result/log.txt"
    await store.db["inputs"].insert_one(
        {
            "_id": "s-old-input",
            "state": "uploading",
            "consumer_id": "c",
            "name": "big",
            "kind": "file",
            "prefix": "inputs/c/s-old-input/",
            "expected": {"key": "inputs/c/s-old-input/big", "path": "big", "size": 3, "sha256": None},
            "history": [],
            "created_at": now,
            "updated_at": now,
        }
    )
    found = await store.find(InputDocument, consumer_id="c")
    assert [d.expected["path"] for d in found if d.id == "s-old-input" and d.expected] == ["big"]
