"""RFC 9457 problem details: every error the ingress returns, with the offending fields named."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from http_serving.problems import PROBLEM_JSON, ProblemDetails

__all__ = ["PROBLEM_JSON", "Problem", "field_name", "invalid", "malformed_json"]


class Problem(ProblemDetails):
    """Raised by a route; rendered as application/problem+json with this status."""


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
