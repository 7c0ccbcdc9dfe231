"""What the WorkflowApi answers, as the client reads it (unknown fields kept: a newer server breaks nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Asset(_Model):
    id: str
    version: int
    title: str
    description: str = ""
    cpu: float = 1.0
    memory: str = "1Gi"
    gpu: int = 0


class AssetInput(_Model):
    name: str
    kind: str
    required: bool = True
    path: str = ""
    description: str = ""


class AssetDetail(Asset):
    inputs: list[AssetInput] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    outputs: list[dict[str, Any]] = Field(default_factory=list)
    time_limits: dict[str, float] = Field(default_factory=dict)
    max_attempts: int = 1


class InputFile(_Model):
    path: str
    size: int
    sha256: str | None = None


class Input(_Model):
    id: str
    name: str
    kind: str
    state: str
    size: int = 0
    sha256: str | None = None
    file_count: int = 0
    created_at: datetime
    files: list[InputFile] | None = None


class RunAccepted(_Model):
    run_id: str
    state: str
    status_url: str
    message: str | None = None


class TimelineEntry(_Model):
    state: str
    at: datetime
    reason: str | None = None


class RunSummary(_Model):
    id: str
    asset_id: str
    asset_version: int
    state: str
    created_at: datetime
    updated_at: datetime


class RunStatus(RunSummary):
    attempt: int = 1
    exit_code: int | None = None
    reason: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    finished: bool = False
    results_url: str | None = None


class ResultFile(_Model):
    name: str
    size: int
    sha256: str | None = None
    content_type: str | None = None
    url: str


class ResultList(_Model):
    run_id: str
    run_state: str
    files: list[ResultFile]
    log_url: str
    archive_url: str


@dataclass(frozen=True)
class LogEvent:
    """One Server-Sent Event of a followed log: `log` (complete lines; `offset` the byte after them) or `end`."""

    kind: str
    data: str
    offset: int | None
