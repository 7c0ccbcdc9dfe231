from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from events.payloads.common import Id, Payload, Reason


class ResultFile(Payload):
    name: str = Field(max_length=1024)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ResultPublished(Payload):
    subject: ClassVar[str] = "wf.result.published"

    run_id: Id
    consumer_id: Id
    files: list[ResultFile] = Field(max_length=100_000)
    manifest_key: str = Field(max_length=1024)
    log_key: str | None = Field(default=None, max_length=1024)


class ResultPublishFailed(Payload):
    subject: ClassVar[str] = "wf.result.publish_failed"

    run_id: Id
    consumer_id: Id
    reason: Reason


class ResultExpired(Payload):
    """A run's results outlived the retention period: their objects are deleted."""

    subject: ClassVar[str] = "wf.result.expired"

    run_id: Id
    consumer_id: Id
    objects: int = Field(ge=0, description="Objects deleted under the run's prefix")
    retention_days: float = Field(gt=0)
