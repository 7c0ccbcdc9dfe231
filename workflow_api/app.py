"""The FastAPI application: routers under /v1, problem+json for every error, health and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workflow_api import assets, inputs, logs, results, runs
from workflow_api.context import ApiContext
from workflow_api.problems import Problem

log = structlog.get_logger("gxwf.workflow_api")

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]

DESCRIPTION = """What a consumer uses: the WorkflowAssets offered to it, its uploaded inputs, its runs, their logs
and results. Authenticate with the token your connector handed over: `Authorization: Bearer <token>`.
Another consumer's ids answer 404. Every error is `application/problem+json` (RFC 9457) with `errors` naming the
fields at fault. See docs/workflow-api.md."""


def create_app(context: ApiContext, readiness: ReadinessCheck) -> FastAPI:
    app = FastAPI(
        title="gaiax-workflows WorkflowApi",
        description=DESCRIPTION,
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = context

    @app.exception_handler(Problem)
    async def problem(request: Request, exc: Problem) -> JSONResponse:
        return exc.response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return Problem(exc.status_code, slug, str(exc.detail), headers=headers).response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e["loc"]]
            if loc and loc[0] in ("query", "path", "header"):
                loc = loc[1:]
            errors.append({"field": ".".join(loc) or "body", "message": str(e["msg"])})
        detail = f"{errors[0]['field']}: {errors[0]['message']}" if errors else "invalid request"
        return Problem(422, "invalid-request", detail, errors=errors).response(request.url.path)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", path=request.url.path)
        return Problem(500, "internal-error", "see the WorkflowApi log", title="Internal error").response(
            request.url.path
        )

    for module in (assets, inputs, runs, logs, results):
        app.include_router(module.router)

    @app.get("/healthz", summary="The process answers", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get(
        "/readyz",
        summary="NATS and MongoDB answer",
        tags=["health"],
        responses={503: {"description": "Not ready", "content": {"application/json": {}}}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app
