"""RFC 9457 problem details for the dashboard's API, with the field at fault named."""

from __future__ import annotations

from http_serving.problems import PROBLEM_JSON, ProblemDetails

__all__ = ["PROBLEM_JSON", "Problem", "invalid", "not_found"]


class Problem(ProblemDetails):
    """`field`: the one field at fault, named in `errors` with the detail's message."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        errors = [{"field": field, "message": detail.split(": ", 1)[-1]}] if field else []
        super().__init__(status, slug, title, detail, errors=errors, headers=headers)


def invalid(field: str, message: str) -> Problem:
    return Problem(422, "invalid-request", "Invalid request", f"{field}: {message}", field=field)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", what)
