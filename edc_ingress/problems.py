"""RFC 9457 problem details: every error the ingress returns, with the offending fields named."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raised by a route; rendered as application/problem+json with this status."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers

    def response(self, instance: str) -> JSONResponse:
        body: dict[str, Any] = {
            "type": f"urn:gxwf:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers)


def field_name(loc: Sequence[int | str]) -> str:
    """`policy.permissions[0]` from pydantic's location tuple; the whole body is `body`."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def invalid(error: ValidationError, *, prefix: Sequence[int | str] = ()) -> Problem:
    errors = [
        {"field": field_name((*prefix, *e["loc"])), "message": e["msg"]}
        for e in error.errors(include_url=False, include_input=False)
    ]
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(
        422, "invalid-request", "Invalid request", f"{first['field']}: {first['message']}{more}", errors=errors
    )


def malformed_json(reason: str) -> Problem:
    return Problem(
        400,
        "malformed-json",
        "Malformed JSON",
        f"body: {reason}",
        errors=[{"field": "body", "message": reason}],
    )
