from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.payloads.common import Id, Payload, Reason, Url


class AccessGranted(Payload):
    """The consumer's access was handed to EDC; the token itself never travels on the bus."""

    subject: ClassVar[str] = "wf.access.granted"

    transfer_process_id: Id
    consumer_id: Id
    workflow_api_url: Url
    token_fingerprint: str = Field(max_length=64, description="First characters of the token's sha256")


class AccessRevoked(Payload):
    subject: ClassVar[str] = "wf.access.revoked"

    transfer_process_id: Id
    consumer_id: Id
    reason: Reason
