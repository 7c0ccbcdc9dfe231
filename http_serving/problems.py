"""RFC 9457 problem details: every HTTP error of every service, typed by a slug, with the fields at fault named.

One exception layer for all of them (`install_problem_handlers`): a `ProblemDetails` a route raises, an HTTP error
of the framework (unknown route, wrong method), a request that fails validation and an unexpected exception all
answer application/problem+json of the same shape, whichever service was asked. A service may render problems its
own way (the dashboard shows browsers a page), but what it renders is the same problem.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:gxwf:problem:"

# Titles in sentence case; any other status is titled by its reason phrase.
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Payload too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Invalid request",
    500: "Internal error",
    503: "Service unavailable",
}
# The slug of an HTTP error the framework raised (no route, wrong method); any other is `http-error`.
_FRAMEWORK_SLUGS = {404: "not-found", 405: "method-not-allowed"}
# Where a request parameter came from: not part of its name (`limit`, not `query.limit`). A body's fields keep
# `body.` in front, so they cannot be mistaken for a parameter.
_PARAMETER_SOURCES = {"query", "path", "header", "cookie"}

log = structlog.get_logger("gxwf.http")


def title_for(status: int) -> str:
    if status in TITLES:
        return TITLES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return "Error"
    return phrase[:1] + phrase[1:].lower()


class ProblemDetails(Exception):
    """Raised by a route; rendered as application/problem+json with this status."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str | None,
        detail: str,
        *,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title or title_for(status)
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = self.errors
        return body

    def response(self, instance: str) -> JSONResponse:
        return JSONResponse(self.body(instance), status_code=self.status, media_type=PROBLEM_JSON, headers=self.headers)


def request_field(loc: Sequence[int | str]) -> str:
    """A validation error's field: `limit` for a query parameter, `Last-Event-ID` for a header, `body.a.0` inside
    a body."""
    parts = [str(part) for part in loc]
    if parts and parts[0] in _PARAMETER_SOURCES:
        parts = parts[1:]
    return ".".join(parts) or "body"


def invalid_request(errors: Sequence[dict[str, str]]) -> ProblemDetails:
    """422 naming every field at fault; the detail is the first, with how many more there are."""
    if not errors:
        return ProblemDetails(422, "invalid-request", None, "invalid request")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    detail = f"{errors[0]['field']}: {errors[0]['message']}{more}"
    return ProblemDetails(422, "invalid-request", None, detail, errors=errors)


def framework_problem(error: HTTPException) -> ProblemDetails:
    headers = dict(error.headers) if error.headers else None
    slug = _FRAMEWORK_SLUGS.get(error.status_code, "http-error")
    return ProblemDetails(error.status_code, slug, None, str(error.detail), headers=headers)


def validation_problem(error: RequestValidationError) -> ProblemDetails:
    return invalid_request([{"field": request_field(e["loc"]), "message": str(e["msg"])} for e in error.errors()])


Renderer = Callable[[Request, ProblemDetails], Awaitable[Response]]


async def render_json(request: Request, problem: ProblemDetails) -> Response:
    return problem.response(request.url.path)


def install_problem_handlers(app: FastAPI, *, service: str, render: Renderer = render_json) -> None:
    """Every error `app` answers becomes a problem: what routes raise, the framework's HTTP errors, invalid
    requests, and anything unexpected (500, logged; the detail points at `service`'s log)."""

    async def on_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, ProblemDetails)
        return await render(request, error)

    async def on_http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        return await render(request, framework_problem(error))

    async def on_invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        return await render(request, validation_problem(error))

    async def on_unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error", service=service, path=request.url.path, exc_info=error)
        return await render(request, ProblemDetails(500, "internal-error", None, f"see the {service} log"))

    app.add_exception_handler(ProblemDetails, on_problem)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(Exception, on_unexpected)
