"""What the fake API server answers with, and what it reads from a request: JSON or text replies, streamed
answers (a watch's JSON lines, a followed log), Status objects, bodies (JSON or YAML) and DeleteOptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import kmock
import yaml

from fakekube import paths
from fakekube.errors import bad_request

JSON = "application/json"
PLAIN = "text/plain"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON, or bytes sent as they are
    content_type: str = JSON


@dataclass(frozen=True)
class Stream:
    """A streamed answer: JSON lines of a watch, or the text of a followed log."""

    content_type: str
    chunks: AsyncIterator[bytes]


def status_ok(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def request_body(request: kmock.Request) -> Any:
    if request.data is not None:
        return request.data
    if not request.text.strip():
        return None
    try:
        return yaml.safe_load(request.text)
    except yaml.YAMLError as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


def delete_options(request: kmock.Request) -> dict[str, Any]:
    options: dict[str, Any] = dict(request.data) if isinstance(request.data, dict) else {}
    query = request.params
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    if "orphanDependents" in query:
        options["orphanDependents"] = paths.is_true(query["orphanDependents"])
    return options


def dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


async def json_lines(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield dump(event).encode() + b"\n"
