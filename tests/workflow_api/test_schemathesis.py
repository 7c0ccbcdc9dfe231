"""schemathesis over the whole OpenAPI document against the real app with a valid token: no 5xx, and every
response conforms to the document (status, content type, headers, body schema)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.workflow_api.conftest import Api

EXAMPLES = 12


def _fuzz_operation(operation: Any, url: str, token: str, failures: list[str], calls: dict[str, int]) -> None:
    label = operation.label

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        calls[label] = calls.get(label, 0) + 1
        try:
            case.call_and_validate(
                base_url=url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
                # A pagination cursor is opaque: the document cannot say which strings this API handed out, so a
                # made-up one is rightly refused (422) though it fits the schema.
                excluded_checks=[positive_data_acceptance],
            )
        except Exception as error:
            failures.append(f"{label}: {type(error).__name__}: {str(error)[:400]}")
            raise

    try:
        check()
    except Exception as error:  # recorded above (or the strategy itself failed); go on with the others
        if not any(f.startswith(f"{label}:") for f in failures):
            failures.append(f"{label}: {type(error).__name__}: {str(error)[:400]}")


def _fuzz(raw: dict[str, Any], url: str, token: str) -> tuple[list[str], dict[str, int]]:
    schema = schemathesis.openapi.from_dict(raw)
    failures: list[str] = []
    calls: dict[str, int] = {}
    for result in schema.get_all_operations():
        _fuzz_operation(result.ok(), url, token, failures, calls)
    return failures, calls


async def test_the_openapi_document_holds_under_generated_requests(api_only: Api) -> None:
    _, token = await api_only.consumer()
    async with httpx.AsyncClient(base_url=api_only.url) as http:
        raw = (await http.get("/openapi.json")).json()
    assert {"/v1/assets", "/v1/inputs", "/v1/runs", "/v1/runs/{run_id}/logs"} <= set(raw["paths"])
    # Every request and response model carries an example.
    for name, component in raw["components"]["schemas"].items():
        if (
            name.startswith(("Asset", "Input", "Run", "Result", "Presigned", "Start", "Timeline"))
            and "enum" not in component
        ):
            assert component.get("examples"), f"{name} has no example"
    failures, calls = await asyncio.to_thread(_fuzz, raw, api_only.url, token)
    assert failures == [], "\n".join(failures)
    operations = sum(len(methods) for methods in raw["paths"].values())
    # Operations without parameters (healthz, readyz) have a single case; the others get EXAMPLES each.
    assert len(calls) == operations and sum(calls.values()) >= (operations - 2) * EXAMPLES, calls
