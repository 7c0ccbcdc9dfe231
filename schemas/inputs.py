"""A consumer's uploaded input (a file or a directory tree) kept in the object store for its runs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from schemas.documents import StatefulDocument
from schemas.state_machine import machine


class InputState(StrEnum):
    UPLOADING = "uploading"
    READY = "ready"
    FAILED = "failed"


INPUT_MACHINE = machine(
    "input",
    {InputState.UPLOADING},
    {
        InputState.UPLOADING: {InputState.READY, InputState.FAILED},
        InputState.READY: set(),
        InputState.FAILED: set(),
    },
)


class InputDocument(StatefulDocument):
    """Objects under `inputs/<quoted consumer>/<input id>/`; `files` holds each one's relative path, size and
    sha256 once the upload is complete and verified."""

    collection = "inputs"
    machine = INPUT_MACHINE

    consumer_id: str
    name: str
    kind: str = Field(pattern=r"^(file|directory)$")
    prefix: str
    files: list[dict[str, Any]] = Field(default_factory=list)
    size: int = 0
    sha256: str | None = None
    reason: str | None = None
    # A presigned upload's announcement ({key, path, size, sha256}), checked against what arrived on completion.
    expected: dict[str, Any] | None = None
