"""Request and response bodies of the WorkflowApi, each with an example for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ParamValue = str | int | float | bool


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


class AssetSummary(BaseModel):
    model_config = _example(
        {"id": "shell-count", "version": 1, "title": "Count lines", "description": "Counts lines.", "gpu": 0}
    )

    id: str
    version: int
    title: str
    description: str = ""
    cpu: float = 1.0
    memory: str = "1Gi"
    gpu: int = 0


class AssetInput(BaseModel):
    model_config = _example({"name": "text", "kind": "file", "required": True, "path": "inputs/text"})

    name: str
    kind: Literal["file", "directory"]
    required: bool = True
    path: str
    description: str = ""


class AssetOutput(BaseModel):
    model_config = _example({"name": "count", "path": "outputs/count.txt"})

    name: str
    path: str
    description: str = ""


class AssetDetail(AssetSummary):
    model_config = _example(
        {
            "id": "shell-count",
            "version": 1,
            "title": "Count lines",
            "inputs": [{"name": "text", "kind": "file", "required": True, "path": "inputs/text"}],
            "parameters": {
                "type": "object",
                "properties": {"GREETING": {"type": "string", "default": "done"}},
                "required": [],
                "additionalProperties": False,
            },
            "outputs": [{"name": "count", "path": "outputs/count.txt"}],
            "time_limits": {"pending_seconds": 60, "running_seconds": 300},
            "max_attempts": 1,
        }
    )

    inputs: list[AssetInput] = Field(description="Uploaded inputs a run takes, by name (`inputs` of a run start)")
    parameters: dict[str, Any] = Field(description="JSON Schema of a run start's `parameters`")
    outputs: list[AssetOutput]
    time_limits: dict[str, float]
    max_attempts: int = 1


class AssetPage(BaseModel):
    model_config = _example({"items": [AssetSummary.model_config["json_schema_extra"]["examples"][0]], "next": None})  # type: ignore[index]

    items: list[AssetSummary]
    next: str | None = Field(default=None, description="The next page's URL; null on the last page")


class InputFile(BaseModel):
    model_config = _example({"path": "data/a.csv", "size": 1024, "sha256": "ab" * 32})

    path: str
    size: int
    sha256: str | None = None


class InputInfo(BaseModel):
    model_config = _example(
        {
            "id": "in-3f2a9c1e0b7d4e5f6a7b",
            "name": "text",
            "kind": "file",
            "state": "ready",
            "size": 1024,
            "sha256": "ab" * 32,
            "file_count": 1,
            "created_at": "2026-12-01T12:00:00Z",
        }
    )

    id: str
    name: str
    kind: Literal["file", "directory"]
    state: Literal["uploading", "ready", "failed"]
    size: int = 0
    sha256: str | None = Field(default=None, description="Of the uploaded body (the archive, for a directory)")
    file_count: int = 0
    created_at: datetime
    files: list[InputFile] | None = Field(default=None, description="Given when one input is described")


class InputPage(BaseModel):
    model_config = _example({"items": [], "next": None})

    items: list[InputInfo]
    next: str | None = None


class PresignedUploadRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "text", "filename": "big.bin", "size": 1048576, "sha256": "ab" * 32}]},
    )

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$", description="The input's name")
    filename: str | None = Field(default=None, min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$")
    size: int = Field(ge=0, description="Bytes the client will PUT; checked at completion")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Checked at completion")
    content_type: str | None = Field(default=None, max_length=200)


class PresignedUpload(BaseModel):
    model_config = _example(
        {
            "input": InputInfo.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
            "url": "http://127.0.0.1:8333/gxwf/inputs/...?X-Amz-Signature=...",
            "method": "PUT",
            "expires_at": "2026-12-01T13:00:00Z",
            "complete_url": "/v1/inputs/in-3f2a9c1e0b7d4e5f6a7b/complete",
        }
    )

    input: InputInfo
    url: str
    method: Literal["PUT"] = "PUT"
    headers: dict[str, str] = Field(default_factory=dict, description="Headers the PUT must carry")
    expires_at: datetime
    complete_url: str


class StartRun(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "asset_id": "shell-count",
                    "parameters": {"GREETING": "hello"},
                    "inputs": {"text": "in-3f2a9c1e0b7d4e5f6a7b"},
                }
            ]
        },
    )

    asset_id: str = Field(min_length=1, max_length=63)
    version: int | None = Field(default=None, ge=1, description="Default: the newest version offered to you")
    parameters: dict[str, ParamValue] = Field(default_factory=dict, max_length=256)
    inputs: dict[str, str] = Field(default_factory=dict, max_length=64, description="Asset input name -> input id")


class RunAccepted(BaseModel):
    model_config = _example(
        {"run_id": "run-6f1d3c52-2b1e-4d7a-9a57-4c9f0b1e8a21", "state": "requested", "status_url": "/v1/runs/run-..."}
    )

    run_id: str
    state: str
    status_url: str
    message: str | None = None


class TimelineEntry(BaseModel):
    model_config = _example({"state": "running", "at": "2026-12-01T12:00:02Z", "reason": None})

    state: str
    at: datetime
    reason: str | None = None


class RunSummary(BaseModel):
    model_config = _example(
        {
            "id": "run-6f1d3c52",
            "asset_id": "shell-count",
            "asset_version": 1,
            "state": "succeeded",
            "created_at": "2026-12-01T12:00:00Z",
            "updated_at": "2026-12-01T12:00:05Z",
        }
    )

    id: str
    asset_id: str
    asset_version: int
    state: str
    created_at: datetime
    updated_at: datetime


class RunStatus(RunSummary):
    model_config = _example(
        {
            "id": "run-6f1d3c52",
            "asset_id": "shell-count",
            "asset_version": 1,
            "state": "succeeded",
            "created_at": "2026-12-01T12:00:00Z",
            "updated_at": "2026-12-01T12:00:05Z",
            "attempt": 1,
            "exit_code": 0,
            "parameters": {"GREETING": "hello"},
            "inputs": {"text": "in-3f2a9c1e0b7d4e5f6a7b"},
            "timeline": [{"state": "queued", "at": "2026-12-01T12:00:00Z"}],
            "finished": True,
            "results_url": "/v1/runs/run-6f1d3c52/results",
        }
    )

    attempt: int = 1
    exit_code: int | None = None
    reason: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: dict[str, str] = Field(default_factory=dict)
    timeline: list[TimelineEntry] = Field(default_factory=list)
    finished: bool = False
    results_url: str | None = Field(default=None, description="Once the results are published")


class RunPage(BaseModel):
    model_config = _example({"items": [], "next": None})

    items: list[RunSummary]
    next: str | None = None


class ResultFileInfo(BaseModel):
    model_config = _example(
        {
            "name": "count.txt",
            "size": 3,
            "sha256": "ab" * 32,
            "content_type": "text/plain",
            "url": "/v1/runs/run-6f1d3c52/results/files/count.txt",
        }
    )

    name: str
    size: int
    sha256: str | None = None
    content_type: str | None = None
    url: str


class ResultList(BaseModel):
    model_config = _example(
        {
            "run_id": "run-6f1d3c52",
            "run_state": "succeeded",
            "files": [],
            "log_url": "/v1/runs/run-6f1d3c52/logs",
            "archive_url": "/v1/runs/run-6f1d3c52/results/archive",
        }
    )

    run_id: str
    run_state: str
    files: list[ResultFileInfo]
    log_url: str
    archive_url: str


class PresignedDownload(BaseModel):
    model_config = _example(
        {"url": "http://127.0.0.1:8333/gxwf/results/...?X-Amz-Signature=...", "expires_at": "2026-12-01T13:00:00Z"}
    )

    url: str
    expires_at: datetime
    size: int
    sha256: str | None = None
