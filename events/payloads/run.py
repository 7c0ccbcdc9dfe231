"""A run of a WorkflowAsset: commands from the WorkflowApi and facts from the compute backends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from events.payloads.common import Id, Payload, Reason
from schemas.assets import StoredAsset

ParamValue = str | int | float | bool
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


FailureKind = Literal["exit_code", "vanished", "oom_killed", "evicted", "node_lost", "image_pull", "unschedulable"]


def _worth_retrying() -> list[FailureKind]:
    # Failures of the platform, not of the workload: another attempt may well succeed.
    return ["vanished", "oom_killed", "evicted", "node_lost"]


class RetryPolicy(Payload):
    """Which failures earn another attempt, how many, and how long to wait before each."""

    limit: int = Field(default=0, ge=0, le=20, description="Further attempts after the first")
    backoff_seconds: float = Field(default=10.0, ge=0, le=24 * 3600, description="Doubles with each attempt")
    on: list[FailureKind] = Field(
        default_factory=_worth_retrying,
        description="Failures worth retrying; a plain non-zero exit only for the exit codes listed",
    )
    exit_codes: list[int] = Field(default_factory=list, max_length=64)


class StagedInput(Payload):
    """An uploaded input a run reads: the objects under `prefix`, placed where the workload looks for them."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
    kind: Literal["file", "directory"]
    input_id: Id
    prefix: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    path: str | None = Field(
        default=None, max_length=1024, description="The asset's path for it; relative paths are under the work dir"
    )
    size: int = Field(default=0, ge=0)
    files: int = Field(default=1, ge=0, description="How many objects the prefix holds")


class RunSpec(Payload):
    """What to execute, resolved from the asset version when the run was requested."""

    image: str | None = Field(default=None, max_length=512)
    command: list[Annotated[str, StringConstraints(max_length=8192)]] = Field(min_length=1, max_length=256)
    bare_command: list[Annotated[str, StringConstraints(max_length=8192)]] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="With an image: the command to run without a container (sites without a container runtime)",
    )
    env: dict[EnvName, Annotated[str, StringConstraints(max_length=8192)]] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=3600, gt=0, le=7 * 24 * 3600, description="Running time limit")
    pending_timeout_seconds: float = Field(
        default=600, gt=0, le=7 * 24 * 3600, description="Admitted but not started (image pull, scheduling)"
    )
    memory_mb: int | None = Field(default=None, ge=16, le=16 * 1024 * 1024, description="Memory limit")
    cpu: float | None = Field(default=None, gt=0, le=1024, description="CPU cores requested (and the limit)")
    gpu_count: int = Field(default=0, ge=0, le=64, description="GPUs (nvidia.com/gpu); lands the run on a GPU node")
    gpu_type: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
        description="GPU product the node must have (node label nvidia.com/gpu.product)",
    )
    node_selector: dict[
        Annotated[str, StringConstraints(max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?$")],
        Annotated[str, StringConstraints(max_length=63, pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")],
    ] = Field(default_factory=dict, max_length=32, description="Node labels the run's node must have")
    read_only_root_filesystem: bool = Field(
        default=True, description="The container's root filesystem is read-only (writable: /tmp and the outputs)"
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    inputs: list[StagedInput] = Field(
        default_factory=list, max_length=64, description="Staged into the run before its workload starts"
    )


def spec_for_asset(asset: StoredAsset, inputs: list[StagedInput]) -> RunSpec:
    """What runs for a version of an asset: image, command, resources, limits and retries from the catalogue,
    only the staged inputs from the request. The WorkflowApi publishes it, and the jobs handler builds it again
    from the catalogue rather than trust what an event carries."""
    d = asset.definition
    memory_mb = max(16, d.resources.memory_bytes // 2**20)
    return RunSpec(
        image=d.image,
        command=list(d.command),
        bare_command=list(d.bare_command) if d.bare_command is not None else None,
        timeout_seconds=d.time_limits.running_seconds,
        pending_timeout_seconds=d.time_limits.pending_seconds,
        memory_mb=memory_mb,
        cpu=d.resources.cpu,
        gpu_count=d.resources.gpu,
        gpu_type=d.resources.gpu_type,
        retry=RetryPolicy(limit=d.retry.max_attempts - 1, backoff_seconds=d.retry.backoff_seconds),
        inputs=inputs,
    )


class RunRequested(Payload):
    subject: ClassVar[str] = "wf.run.requested"

    run_id: Id
    consumer_id: Id
    transfer_process_id: Id | None = Field(
        default=None, description="The transfer whose access started it (the WorkflowApi's token is per transfer)"
    )
    site: Id | None = Field(
        default=None,
        description="The compute site to run on (the one its WorkflowApi was placed on); None: whichever takes it",
    )
    asset_id: Id
    asset_version: int = Field(default=1, ge=1)
    parameters: dict[EnvName, ParamValue] = Field(default_factory=dict)
    inputs: list[Id] = Field(default_factory=list, max_length=1000)
    spec: RunSpec


class RunStopRequested(Payload):
    subject: ClassVar[str] = "wf.run.stop.requested"

    run_id: Id
    consumer_id: Id
    reason: Reason | None = None


class RunFact(Payload):
    run_id: Id
    consumer_id: Id


class RunQueued(RunFact):
    subject: ClassVar[str] = "wf.run.queued"

    position: int = Field(ge=0)


class RunPending(RunFact):
    subject: ClassVar[str] = "wf.run.pending"

    backend: str = Field(max_length=64)
    site: Id
    attempt: int = Field(default=1, ge=1)


class RunRunning(RunFact):
    subject: ClassVar[str] = "wf.run.running"

    attempt: int = Field(default=1, ge=1)
    backend: str = Field(max_length=64)
    handle: str = Field(max_length=256, description="Backend's name for the job (pid, Job name)")


class RunSucceeded(RunFact):
    subject: ClassVar[str] = "wf.run.succeeded"

    exit_code: Literal[0] = 0
    duration_seconds: float = Field(ge=0)


class RunRetrying(RunFact):
    """An attempt failed in a way the run's retry policy covers: the run goes back to the queue."""

    subject: ClassVar[str] = "wf.run.retrying"

    attempt: int = Field(ge=2, description="The attempt that comes next")
    reason: Reason
    retry_at: datetime


class RunFailed(RunFact):
    subject: ClassVar[str] = "wf.run.failed"

    exit_code: int | None = None
    failure: FailureKind | None = None
    reason: Reason
    duration_seconds: float | None = Field(default=None, ge=0)


class RunStopped(RunFact):
    subject: ClassVar[str] = "wf.run.stopped"

    reason: Reason | None = None


class RunTimedOut(RunFact):
    subject: ClassVar[str] = "wf.run.timed_out"

    phase: Literal["pending", "running"]
    limit_seconds: float = Field(gt=0)
    detail: Reason | None = Field(default=None, description="What the workload waited for (image pull, scheduling)")
