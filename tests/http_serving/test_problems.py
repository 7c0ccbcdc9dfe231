"""One problem+json layer (http_serving.problems) answers for every HTTP service: the same faulty request gets
the same problem, whichever service is asked. Each service's own app is built here, with nothing behind it, since
none of these requests gets as far as a store or a bus."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, Query

from dashboard.app import Dashboard
from dashboard.app import create_app as dashboard_app
from dashboard.auth import Tokens
from edc_ingress.app import Ingress, IngressLimits
from edc_ingress.app import create_app as ingress_app
from edc_simulator.ledger import Ledger
from edc_simulator.server import create_app as simulator_app
from edc_simulator.versions import VERSIONS
from gxwf.health import health_app
from schemas.connectors import ConnectorRegistry
from workflow_api.app import create_app as workflow_api_app
from workflow_api.context import ApiContext
from workflow_api.settings import WorkflowApiSettings


async def _ready() -> dict[str, str]:
    return {"everything": "ok"}


def _nothing() -> Any:
    return cast(Any, None)


def _workflow_api() -> FastAPI:
    # Only its settings are read while the app is built (its body limits).
    context = SimpleNamespace(settings=WorkflowApiSettings(_env_file=None))
    return workflow_api_app(cast(ApiContext, context), _ready)


def _dashboard() -> FastAPI:
    tokens = Tokens("operator-token-0000001", "admin-token-000000002")
    placeholders: dict[str, Any] = {name: _nothing() for name in ("nc", "js", "queries", "objects", "hub", "logs")}
    return dashboard_app(Dashboard(tokens=tokens, bucket="b", sites=[], **placeholders))


def _ingress() -> FastAPI:
    ingress = Ingress(ConnectorRegistry(connectors=()), _nothing(), _nothing(), _ready, IngressLimits())
    return ingress_app(ingress)


def _simulator() -> FastAPI:
    return simulator_app(Ledger(), next(iter(VERSIONS.values())), management_key="k" * 16)


def _worker() -> FastAPI:
    return health_app(_ready)


# Each service's app, and a route of it that answers GET only.
SERVICES: dict[str, tuple[Callable[[], FastAPI], str]] = {
    "WorkflowApi": (_workflow_api, "/healthz"),
    "dashboard": (_dashboard, "/healthz"),
    "ingress": (_ingress, "/healthz"),
    "EDC simulator": (_simulator, "/sim/callbacks"),
    "worker": (_worker, "/healthz"),
}


def _with_probes(app: FastAPI) -> FastAPI:
    """Two routes of the test's own on the service's app: one with a typed parameter, one that fails."""

    @app.get("/probe/typed")
    async def typed(limit: int = Query(ge=1)) -> dict[str, int]:
        return {"limit": limit}

    @app.get("/probe/broken")
    async def broken() -> None:
        raise RuntimeError("something nobody planned for")

    return app


async def _ask(service: str, method: str, path: str) -> tuple[httpx.Response, dict[str, Any]]:
    build, _ = SERVICES[service]
    transport = httpx.ASGITransport(app=_with_probes(build()), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.request(method, path, headers={"accept": "application/json"})
    assert response.headers["content-type"] == "application/problem+json", (service, response.text)
    body: dict[str, Any] = response.json()
    assert body["instance"] == path.split("?")[0] and body["status"] == response.status_code
    return response, body


def _get_only(service: str) -> str:
    return SERVICES[service][1]


CASES: dict[str, tuple[str, Callable[[str], str], dict[str, Any]]] = {
    "no such route": (
        "GET",
        lambda _: "/no/such/route",
        {"type": "urn:gxwf:problem:not-found", "title": "Not found", "status": 404, "detail": "Not Found"},
    ),
    "wrong method": (
        "DELETE",
        _get_only,
        {
            "type": "urn:gxwf:problem:method-not-allowed",
            "title": "Method not allowed",
            "status": 405,
            "detail": "Method Not Allowed",
        },
    ),
    "malformed parameter": (
        "GET",
        lambda _: "/probe/typed?limit=many",
        {
            "type": "urn:gxwf:problem:invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": "limit: Input should be a valid integer, unable to parse string as an integer",
            "errors": [
                {"field": "limit", "message": "Input should be a valid integer, unable to parse string as an integer"}
            ],
        },
    ),
    "parameter out of range": (
        "GET",
        lambda _: "/probe/typed?limit=0",
        {
            "type": "urn:gxwf:problem:invalid-request",
            "title": "Invalid request",
            "status": 422,
            "detail": "limit: Input should be greater than or equal to 1",
            "errors": [{"field": "limit", "message": "Input should be greater than or equal to 1"}],
        },
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_the_same_faulty_request_gets_the_same_problem_from_every_service(service: str, case: str) -> None:
    method, path, expected = CASES[case]
    _, body = await _ask(service, method, path(service))
    assert {k: v for k, v in body.items() if k != "instance"} == expected


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_an_unexpected_error_is_a_problem_pointing_at_the_service_log(service: str) -> None:
    response, body = await _ask(service, "GET", "/probe/broken")
    assert response.status_code == 500
    assert {k: v for k, v in body.items() if k != "instance"} == {
        "type": "urn:gxwf:problem:internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": f"see the {service} log",
    }
    assert "nobody planned" not in response.text
