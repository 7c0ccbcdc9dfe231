from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from events.payloads.run import FailureKind, RunSpec


class StartRefused(Exception):
    """The backend cannot start this run, and another try would not change that (an input that is not there, a
    spec it cannot run, a workload that cannot be launched): the run fails with this reason at once, rather
    than being retried into the dead letters and left pending until its time limit."""


class WorkloadPhase(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    # The backend has no trace of it (pod deleted, process and its record gone).
    MISSING = "missing"


@dataclass(frozen=True)
class WorkloadStatus:
    phase: WorkloadPhase
    exit_code: int | None = None
    detail: str | None = None
    # What kind of failure, for the run's retry policy (None while running or after success).
    failure: FailureKind | None = None
    # Admitted but not started yet (image pull, scheduling): the run's pending time limit applies, and
    # `detail` says what it waits for.
    waiting: bool = False
    # Ended by the backend's own time limit (a Slurm job's TIMEOUT): the run timed out, whatever the exit status.
    timed_out: bool = False


@dataclass(frozen=True)
class RunOwner:
    """Whose run it is: backends that isolate consumers (a namespace each) or label workloads need it."""

    consumer_id: str
    asset_id: str
    asset_version: int = 1


@dataclass(frozen=True)
class RunArtifacts:
    """What a finished run left on this backend for the results handler to publish.

    Backends that stage out to the object store themselves (a Kubernetes Job's last step) return nothing.
    """

    outputs: list[tuple[str, Path]]
    log: Path | None


class ComputeBackend(Protocol):
    name: str
    site: str

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        """Start an attempt of the run and return its handle; starting a started attempt returns the same handle."""
        ...

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus: ...

    async def stop(self, run_id: str) -> bool:
        """End the run's workload; True once every one of its processes or pods is confirmed gone."""
        ...

    async def artifacts(self, run_id: str) -> RunArtifacts: ...

    def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        """The attempt's output from byte `offset` on, as it is written; ends once the workload has ended (or
        has not started: ask again later)."""
        ...

    async def discard(self, run_id: str) -> None:
        """The run ended and its results are published: drop what only served to publish them (finished Jobs and
        their pods, saved logs). Backends whose leftovers cost nothing until the consumer's release keep them."""
        ...

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        """Remove what the consumer's ended runs left here (its runs namespace, run directories, saved logs)
        once their results are published; True once confirmed gone (also when nothing was there)."""
        ...
