from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.payloads.common import Id, Payload, Reason


class ConsumerProvisioningFailed(Payload):
    subject: ClassVar[str] = "wf.consumer.provisioning_failed"

    transfer_process_id: Id
    consumer_id: Id | None = None
    step: str = Field(max_length=64, description="negotiation, deployment, asset or callback")
    reason: Reason


class ConsumerDeprovisioned(Payload):
    subject: ClassVar[str] = "wf.consumer.deprovisioned"

    transfer_process_id: Id
    consumer_id: Id | None = None
    reason: Reason | None = None


class ConsumerReleased(Payload):
    """A consumer with no live transfer left: what its ended runs left on a compute site is gone (on Kubernetes
    its runs namespace). Results stay in the object store for the retention period."""

    subject: ClassVar[str] = "wf.consumer.released"

    consumer_id: Id
    transfer_process_id: Id = Field(description="The transfer whose end left the consumer without one")
    site: Id
    runs: int = Field(ge=0, description="Runs whose leftovers were removed")
