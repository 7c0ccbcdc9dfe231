"""The event contract: envelopes, ids, and payload validation of hostile or sloppy producers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from events.catalogue import BY_SUBJECT, CATALOGUE, spec_for
from events.envelope import Envelope, derived_id, new_event
from events.payloads.run import RunRequested, RunSpec


def test_catalogue_subjects_are_unique_and_examples_are_valid() -> None:
    assert len(BY_SUBJECT) == len(CATALOGUE)
    for spec in CATALOGUE:
        assert spec.payload.model_validate(spec.example.model_dump(mode="json")) == spec.example
        assert spec.command == spec.subject.endswith(".requested")


def test_unknown_subject_names_the_place_to_add_it() -> None:
    with pytest.raises(KeyError, match=r"events/catalogue\.py"):
        spec_for("wf.nope")


def test_derived_ids_are_stable_and_distinct() -> None:
    assert derived_id("run-1", "wf.run.running") == derived_id("run-1", "wf.run.running")
    assert derived_id("run-1", "wf.run.running") != derived_id("run-1", "wf.run.succeeded")
    # The separator keeps ("a.b", "c") and ("a", "b.c") apart.
    assert derived_id("a", "bc") != derived_id("ab", "c")


def test_envelope_round_trips_with_cloudevents_attributes() -> None:
    run = RunRequested(run_id="r", consumer_id="c", asset_id="a", spec=RunSpec(command=["true"]))
    event = new_event("wf.run.requested", run, correlationid="r", causationid="e0")
    wire = event.model_dump(mode="json")
    assert wire["specversion"] == "1.0" and wire["datacontenttype"] == "application/json"
    assert set(wire) >= {"id", "source", "type", "time", "correlationid", "causationid", "data"}
    back = Envelope[RunRequested].model_validate(wire)
    assert back == event


def test_unknown_fields_are_kept_for_newer_producers() -> None:
    wire = {
        "id": "1",
        "type": "wf.run.requested",
        "traceparent": "00-abc",
        "data": {
            "run_id": "r",
            "consumer_id": "c",
            "asset_id": "a",
            "spec": {"command": ["x"]},
            "priority": 3,
        },
    }
    event = Envelope[RunRequested].model_validate(wire)
    assert event.model_dump()["traceparent"] == "00-abc"
    assert event.data.model_dump()["priority"] == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"consumer_id": "c", "asset_id": "a", "spec": {"command": ["x"]}}, "run_id"),
        ({"run_id": "r" * 300, "consumer_id": "c", "asset_id": "a", "spec": {"command": ["x"]}}, "run_id"),
        ({"run_id": "has space", "consumer_id": "c", "asset_id": "a", "spec": {"command": ["x"]}}, "run_id"),
        ({"run_id": "r", "consumer_id": "c", "asset_id": "a", "spec": {"command": []}}, "command"),
        (
            {
                "run_id": "r",
                "consumer_id": "c",
                "asset_id": "a",
                "spec": {"command": ["x"], "timeout_seconds": -1},
            },
            "timeout",
        ),
        (
            {
                "run_id": "r",
                "consumer_id": "c",
                "asset_id": "a",
                "spec": {"command": ["x"], "env": {"1BAD": "v"}},
            },
            "env",
        ),
        (
            {
                "run_id": "r",
                "consumer_id": "c",
                "asset_id": "a",
                "parameters": {"P": [1]},
                "spec": {"command": ["x"]},
            },
            "parameters",
        ),
    ],
)
def test_bad_payloads_are_rejected_naming_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Envelope[RunRequested].model_validate({"id": "1", "type": "wf.run.requested", "data": data})
    assert field in str(info.value)


def test_envelope_rejects_a_wrong_specversion_and_oversized_ids() -> None:
    data = {"run_id": "r", "consumer_id": "c", "asset_id": "a", "spec": {"command": ["x"]}}
    with pytest.raises(ValidationError, match="specversion"):
        Envelope[RunRequested].model_validate({"specversion": "0.3", "id": "1", "type": "t", "data": data})
    with pytest.raises(ValidationError, match="id"):
        Envelope[RunRequested].model_validate({"id": "x" * 201, "type": "t", "data": data})
