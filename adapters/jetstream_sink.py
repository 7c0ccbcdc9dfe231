"""Publishing envelopes straight to JetStream with nats-py: the EventSink for hot HTTP paths.

Same wire format as events.bus.Bus.publish (structured CloudEvents JSON, Nats-Msg-Id = event id, stream WF),
without FastStream's per-message machinery, which costs more than the rest of an ingress request.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client
from nats.js import JetStreamContext

from events.envelope import Envelope
from events.wire import publish_to_jetstream


class JetStreamSink:
    def __init__(self, nc: Client, *, timeout: float = 5.0) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=timeout)

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    async def publish(self, event: Envelope[Any]) -> None:
        """Returns once JetStream acked (stored, or recognised as a duplicate of) the event."""
        await publish_to_jetstream(self.js, event)
