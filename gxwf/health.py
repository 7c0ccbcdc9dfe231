"""/healthz, /readyz and /metrics for a worker process that has no HTTP API of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from http_serving.problems import install_problem_handlers
from http_serving.server import Served

ReadinessCheck = Callable[[], Awaitable[dict[str, str]]]


def health_app(readiness: ReadinessCheck) -> FastAPI:
    app = FastAPI(title="gxwf worker health", docs_url=None, redoc_url=None, openapi_url=None)
    install_problem_handlers(app, service="worker")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


async def serve(app: FastAPI, host: str, port: int) -> Served:
    served = Served("health-server", host, port)
    await served.start(app)
    return served
