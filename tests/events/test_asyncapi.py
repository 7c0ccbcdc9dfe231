"""asyncapi.yaml is generated from the code and documents every subject with its schema and an example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from events.catalogue import CATALOGUE, DEAD_LETTER
from events.envelope import Envelope
from gxwf.asyncapi_doc import render_yaml
from handlers.subscriptions import SUBSCRIPTIONS

ROOT = Path(__file__).resolve().parents[2]


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "asyncapi.yaml").read_text())
    return loaded


def test_committed_file_matches_the_code() -> None:
    assert (ROOT / "asyncapi.yaml").read_text() == render_yaml(), (
        "asyncapi.yaml is out of date: run `gxwf asyncapi -o asyncapi.yaml` and commit it"
    )


def test_it_is_asyncapi_3_and_lists_every_catalogue_subject() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert {spec.subject for spec in CATALOGUE} | {DEAD_LETTER.subject} <= addresses
    prefixes = {spec.subject.split(".")[0] + "." + spec.subject.split(".")[1] for spec in CATALOGUE}
    for family in (
        "edc.provision",
        "wf.deployment",
        "wf.asset",
        "wf.access",
        "wf.run",
        "wf.result",
        "wf.consumer",
    ):
        assert family in prefixes


def test_every_handler_subscription_is_a_receive_operation() -> None:
    doc = document()
    received = {
        doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[-1]]["address"]
        for op in doc["operations"].values()
        if op["action"] == "receive"
    }
    assert {sub.subject for sub in SUBSCRIPTIONS} <= received


def test_every_message_has_a_schema_and_an_example_that_validates() -> None:
    doc = document()
    by_subject = {spec.subject: spec for spec in (*CATALOGUE, DEAD_LETTER)}
    for channel in doc["channels"].values():
        spec = by_subject.get(channel["address"])
        if spec is None:
            continue
        for ref in channel["messages"].values():
            name = ref["$ref"].rsplit("/", 1)[-1].replace("%7B", "{").replace("%7D", "}")
            message = doc["components"]["messages"][name]
            assert message["payload"], name
            (example,) = message["examples"]
            if spec is DEAD_LETTER:
                spec.payload.model_validate(example["payload"])
            else:
                envelope = Envelope[spec.payload].model_validate(example["payload"])  # type: ignore[name-defined]
                assert envelope.type == spec.subject
