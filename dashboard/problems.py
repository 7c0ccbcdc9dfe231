"""RFC 9457 problem details for the dashboard's API, with the field at fault named."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
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
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = [{"field": field, "message": detail.split(": ", 1)[-1]}] if field else []
        self.headers = headers

    def body(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:gxwf:problem:{self.slug}",
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


def invalid(field: str, message: str) -> Problem:
    return Problem(422, "invalid-request", "Invalid request", f"{field}: {message}", field=field)


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", "Not found", what)
