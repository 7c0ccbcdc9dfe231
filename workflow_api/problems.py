"""RFC 9457 problem details: every error the WorkflowApi returns, with the offending fields named."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from http_serving.problems import PROBLEM_JSON, ProblemDetails, title_for

# Inline and flat (no $defs), so it can sit under every response of the OpenAPI document.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "urn:gxwf:problem:invalid-request"},
        "title": {"type": "string", "example": "Invalid request"},
        "status": {"type": "integer", "example": 422},
        "detail": {"type": "string", "example": "parameters.EPISODES: must be at most 1000"},
        "instance": {"type": "string", "example": "/v1/runs"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries of these error statuses, all problem+json."""
    return {
        status: {"description": title_for(status), "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for status in statuses
    }


class Problem(ProblemDetails):
    """Raised by a route; rendered as application/problem+json (http_serving.problems), its title from the
    status unless given."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, slug, title, detail, errors=errors, headers=headers)


def invalid(field: str, message: str, *, more: Sequence[dict[str, str]] = ()) -> Problem:
    errors = [{"field": field, "message": message}, *more]
    extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return Problem(422, "invalid-request", f"{field}: {message}{extra}", errors=errors)


def invalid_all(errors: Sequence[dict[str, str]]) -> Problem:
    return invalid(errors[0]["field"], errors[0]["message"], more=errors[1:])


def from_validation(error: ValidationError, prefix: str = "body") -> Problem:
    errors = [
        {"field": ".".join([prefix, *(str(p) for p in e["loc"])]), "message": str(e["msg"])}
        for e in error.errors(include_url=False, include_input=False)
    ]
    return invalid_all(errors)


def not_found(what: str, ident: str) -> Problem:
    # The same answer whether the object does not exist or belongs to another consumer.
    return Problem(404, "not-found", f"no {what} {ident}")


def expired(run_id: str) -> Problem:
    """Results (and the archived log) deleted at the end of their retention period (GXWF_RESULT_RETENTION_DAYS)."""
    return Problem(
        410, "results-expired", f"the results of run {run_id} were deleted at the end of their retention period"
    )
