from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from events.payloads.common import Payload


class HandlerError(Payload):
    type: str = Field(max_length=200)
    message: str = Field(max_length=8000)


class DeadLetter(Payload):
    """An event a handler gave up on: what it was, who failed, why, after how many tries."""

    original_subject: str = Field(max_length=512)
    original: dict[str, Any] | None = Field(default=None, description="The event, when it was JSON")
    original_text: str | None = Field(default=None, description="The raw body, when it was not JSON")
    handler: str = Field(max_length=200)
    error: HandlerError
    delivery_count: int = Field(ge=1)
    stream_sequence: int | None = None
    failed_at: datetime
