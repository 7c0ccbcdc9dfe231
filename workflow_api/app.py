"""The FastAPI application: routers under /v1, problem+json for every error, health and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from http_serving.body_limit import BodyLimit
from http_serving.problems import install_problem_handlers
from workflow_api import assets, inputs, logs, results, runs
from workflow_api.context import ApiContext

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

    install_problem_handlers(app, service="WorkflowApi")
    # Before anything reads a body (FastAPI parses JSON before authenticating): uploads stream to their own limit.
    settings = context.settings
    app.add_middleware(
        BodyLimit,
        limit=settings.workflow_api_json_limit_bytes,
        streamed={("POST", "/v1/inputs"): settings.workflow_api_upload_limit_bytes},
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
