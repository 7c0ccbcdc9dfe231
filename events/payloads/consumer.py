from __future__ import annotations

from pydantic import Field

from events.payloads.common import Id, Payload, Reason


class ConsumerProvisioningFailed(Payload):
    transfer_process_id: Id
    consumer_id: Id | None = None
    step: str = Field(max_length=64, description="negotiation, deployment, asset or callback")
    reason: Reason


class ConsumerDeprovisioned(Payload):
    transfer_process_id: Id
    consumer_id: Id | None = None
    reason: Reason | None = None
