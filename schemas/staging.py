"""What a Kubernetes run pod's own stage steps are told: which objects to fetch before the workload starts and
where to put what it wrote. Only presigned URLs, valid for this attempt: no S3 credentials reach the pod."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

RelativePath = Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=r"^[^/\x00][^\x00]*$")]


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageFile(_Plan):
    relative: str = Field(max_length=1024, description="Under the input's directory; empty for a file input")
    url: str = Field(max_length=8192)
    size: int | None = Field(default=None, ge=0)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class StageInput(_Plan):
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
    kind: Literal["file", "directory"]
    # The asset's relative path for it, linked under the workload's working directory.
    path: RelativePath | None = None
    files: list[StageFile] = Field(default_factory=list, max_length=100_000)


class StagePlan(_Plan):
    inputs: list[StageInput] = Field(default_factory=list)
    # A presigned PUT for the tar of everything the workload left in its outputs directory.
    outputs_url: str | None = Field(default=None, max_length=8192)
