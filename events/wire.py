"""How an envelope travels: structured CloudEvents JSON on its subject, the event id as Nats-Msg-Id."""

from __future__ import annotations

from typing import Any

from nats.js import JetStreamContext

from events.envelope import Envelope
from events.subjects import STREAM


def encode(event: Envelope[Any]) -> bytes:
    return event.model_dump_json(by_alias=True).encode()


def headers(event: Envelope[Any]) -> dict[str, str]:
    return {"Nats-Msg-Id": event.id, "content-type": "application/cloudevents+json"}


async def publish_to_jetstream(js: JetStreamContext, event: Envelope[Any]) -> None:
    """Returns once JetStream acked the event: stored, or recognised as a duplicate of one it has."""
    await js.publish(event.type, encode(event), stream=STREAM, headers=headers(event))
