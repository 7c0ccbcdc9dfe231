"""asyncapi.yaml, generated from the FastStream app: every subscriber, every catalogue subject, examples."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import yaml
from faststream.specification import AsyncAPI

from events.bus import Bus
from events.catalogue import CATALOGUE, DEAD_LETTER
from events.subjects import LOG_CHUNK_BYTES, LOG_PREFIX, LOG_STREAM
from gxwf import __version__
from gxwf.runtime import delivery_policy, wire
from gxwf.settings import Settings

DESCRIPTION = (
    "Events of gaiax-workflows. Every message is a CloudEvents 1.0 envelope (structured JSON) whose `type` "
    "equals its subject and whose `data` is the payload below. Subjects ending in `.requested` are commands, "
    "all others are facts. The `edc.*` subjects are a public contract: a connector extension may publish "
    "them straight to NATS. Publishers set `Nats-Msg-Id` to the event id; JetStream de-duplicates."
)


def build_document() -> dict[str, Any]:
    bus = Bus("nats://localhost:4222", delivery_policy(Settings()))
    wire(bus, None, None)
    bus.document_catalogue()
    spec = AsyncAPI(
        bus.broker,
        title="gaiax-workflows events",
        version=__version__,
        description=DESCRIPTION,
        schema_version="3.0.0",
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    _add_examples(document)
    _add_live_logs(document)
    # FastStream keeps subscribers in hash order; sort so the committed file only changes with the code.
    for key in ("channels", "operations"):
        document[key] = dict(sorted(document.get(key, {}).items()))
    for key, section in document.get("components", {}).items():
        document["components"][key] = dict(sorted(section.items()))
    return document


def _add_examples(document: dict[str, Any]) -> None:
    """FastStream documents payload schemas only; AsyncAPI messages also carry examples, from the catalogue."""
    examples = {spec.subject: spec for spec in (*CATALOGUE, DEAD_LETTER)}
    channels: dict[str, Any] = document.get("channels", {})
    messages: dict[str, Any] = document.get("components", {}).get("messages", {})
    for channel in channels.values():
        spec = examples.get(channel.get("address", ""))
        if spec is None:
            continue
        for ref in channel.get("messages", {}).values():
            name = unquote(ref.get("$ref", "").rsplit("/", 1)[-1])
            message = messages.get(name)
            if message is None:
                continue
            payload = spec.example.model_dump(mode="json")
            if spec is DEAD_LETTER:
                example: dict[str, Any] = payload
            else:
                example = {
                    "specversion": "1.0",
                    "id": "7d6f0f0e-5b8a-5c8e-9a43-0c8f2a1d9b10",
                    "source": "urn:gaiax-workflows",
                    "type": spec.subject,
                    "time": "2026-11-25T09:30:00Z",
                    "datacontenttype": "application/json",
                    "data": payload,
                }
            message["examples"] = [{"name": spec.subject, "summary": spec.summary, "payload": example}]


def _add_live_logs(document: dict[str, Any]) -> None:
    """The live-log stream is not made of events: raw chunks of a run's output, documented by hand here."""
    name = "RunLogChunk"
    document.setdefault("channels", {})["logs.{run}"] = {
        "address": f"{LOG_PREFIX}.{{run}}",
        "description": (
            f"Stream {LOG_STREAM}: a running attempt's output, chunk by chunk (events.subjects.log_subject: "
            "`{run}` is the first 24 hex digits of the sha256 of the run id). Read from the start, or from a "
            "stream sequence to resume; the archived log.txt in the object store is the record."
        ),
        "parameters": {"run": {"description": "sha256(run id)[:24]"}},
        "messages": {name: {"$ref": f"#/components/messages/{name}"}},
    }
    document.setdefault("operations", {})["logs.{run}:Publish"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/logs.{run}"},
        "summary": "The jobs handlers' log shipper, one per site",
        "messages": [{"$ref": "#/channels/logs.{run}/messages/" + name}],
    }
    document.setdefault("components", {}).setdefault("messages", {})[name] = {
        "title": name,
        "contentType": "text/plain",
        "summary": f"At most {LOG_CHUNK_BYTES} bytes of output, cut after a newline where there is one",
        "headers": {
            "type": "object",
            "required": ["Nats-Msg-Id", "Gxwf-Attempt", "Gxwf-Offset"],
            "properties": {
                "Nats-Msg-Id": {"type": "string", "description": "run:attempt:offset, so a chunk is stored once"},
                "Gxwf-Attempt": {"type": "string", "description": "The attempt (1, 2, ...) whose output it is"},
                "Gxwf-Offset": {"type": "string", "description": "Its first byte's offset within that attempt"},
            },
        },
        "payload": {"type": "string", "format": "binary"},
        "examples": [
            {
                "name": "two lines",
                "headers": {"Nats-Msg-Id": "run-42:1:0", "Gxwf-Attempt": "1", "Gxwf-Offset": "0"},
                "payload": "frame 1\nframe 2\n",
            }
        ],
    }


def render_yaml() -> str:
    return yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True, width=110)
