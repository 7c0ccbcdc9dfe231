"""Request bodies read with a cap before they are parsed (a JSON route never buffers more than its limit)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from http_serving.body_limit import BodyTooLarge
from http_serving.problems import ProblemDetails

M = TypeVar("M", bound=BaseModel)


def too_large(limit: int) -> ProblemDetails:
    # The same 413 as every other service's (http_serving.body_limit).
    return BodyTooLarge(limit)


def _declared(request: Request) -> int | None:
    value = request.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise ProblemDetails(400, "bad-content-length", None, "Content-Length is not a number") from None


async def capped(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives; 413 once more than `limit` bytes were announced or sent."""
    declared = _declared(request)
    if declared is not None and declared > limit:
        raise too_large(limit)
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise too_large(limit)
        if chunk:
            yield chunk


async def json_body(request: Request, model: type[M], limit: int) -> M:
    parts = [chunk async for chunk in capped(request, limit)]
    try:
        return model.model_validate_json(b"".join(parts))
    except ValidationError as error:
        raise invalid_body(error.errors()) from None


def invalid_body(errors: list[Any]) -> ProblemDetails:
    fields = [{"field": ".".join(["body", *(str(p) for p in e["loc"])]), "message": str(e["msg"])} for e in errors[:20]]
    first = fields[0] if fields else {"field": "body", "message": "invalid"}
    return ProblemDetails(422, "invalid-request", None, f"{first['field']}: {first['message']}", errors=fields)
