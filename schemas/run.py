from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.documents import StatefulDocument
from schemas.state_machine import machine


class RunState(StrEnum):
    QUEUED = "queued"
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    TIMED_OUT = "timed_out"


R = RunState
RUN_MACHINE = machine(
    "run",
    # A request is accepted into the queue; the dispatcher admits it to a site (pending) when a slot is free.
    {R.QUEUED},
    {
        R.QUEUED: {R.PENDING, R.FAILED, R.STOPPED},
        # A workload that exits before anyone saw it running still passes through RUNNING (the watcher
        # reports both), so "succeeded while pending" is always out of order.
        # Back to QUEUED: a failed attempt that the run's retry policy covers.
        R.PENDING: {R.RUNNING, R.QUEUED, R.FAILED, R.STOPPED, R.TIMED_OUT},
        R.RUNNING: {R.SUCCEEDED, R.QUEUED, R.FAILED, R.STOPPED, R.TIMED_OUT},
        R.SUCCEEDED: set(),
        R.FAILED: set(),
        R.STOPPED: set(),
        R.TIMED_OUT: set(),
    },
)


class RunDocument(StatefulDocument):
    collection = "runs"
    machine = RUN_MACHINE

    consumer_id: str
    # The transfer whose access started it, so a transfer's timeline shows its runs; None for operators' runs.
    transfer_process_id: str | None = None
    asset_id: str
    asset_version: int = 1
    backend: str | None = None
    site: str | None = None
    handle: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Any] = Field(default_factory=dict)
    exit_code: int | None = None
    reason: str | None = None
    # Set before the workload is killed, so the watcher reports the end as stopped, not as a crash.
    stop_requested: str | None = None
    attempt: int = 1
    # A retried run waits in the queue until then (its backoff).
    not_before: datetime | None = None
    # False between the run's creation and its wf.run.queued being published: the dispatcher leaves it until
    # then, so that wf.run.pending never comes before wf.run.queued on the bus.
    announced: bool = True


class RunRequestRecord(BaseModel):
    """A run start as the WorkflowApi accepted it, before the jobs handler queued it: it answers a retried start
    with the same Idempotency-Key, and reads as state `requested` until the run document exists."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    collection: ClassVar[str] = "run_requests"

    id: str = Field(alias="_id")
    consumer_id: str
    asset_id: str
    asset_version: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    # The sha256 of what the start asked for: the same key with different content is refused.
    fingerprint: str
    created_at: datetime
