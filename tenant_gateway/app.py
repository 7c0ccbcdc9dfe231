"""The FastAPI application: the routers under /v1, problem+json for every error, health and readiness."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from http_serving.problems import install_problem_handlers
from tenant_gateway import commands, documents, objects
from tenant_gateway.context import GatewayContext

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]

DESCRIPTION = """What a per-consumer WorkflowApi reads, writes and publishes, for its one consumer: authenticate
with the token its deployment was given (`Authorization: Bearer gw1.<deployment>.<mac>`). Another consumer's
documents, objects and runs answer 404 (403 for a command naming them). See docs/workflow-api.md."""


def create_app(context: GatewayContext, readiness: ReadinessCheck) -> FastAPI:
    app = FastAPI(
        title="gaiax-workflows tenant gateway", description=DESCRIPTION, version="1", docs_url=None, redoc_url=None
    )
    app.state.gateway = context
    install_problem_handlers(app, service="tenant gateway")
    for module in (documents, objects, commands):
        app.include_router(module.router)

    @app.get("/healthz", summary="The process answers", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", summary="NATS and MongoDB answer", tags=["health"])
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    return app
