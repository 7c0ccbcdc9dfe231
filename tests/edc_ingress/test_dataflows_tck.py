"""The data-plane scenarios of the Data Plane Signaling conformance kit (eclipse-dataspacetck/dps-tck,
dps-tck/src/main/java/org/eclipse/dataspacetck/dps/verification/dataplane) that apply to a provider-side pull data
plane, each test named for its scenario, against the real ingress, bus, store, handlers and WorkflowApi.

The kit plays the provider's control plane: its messages as it writes them (HttpDataPlaneClient: `profile`, no
`callbackAddress`, `dataspaceContext` "tck-dataspace"), its state checks as it reads them (`GET
/dataflows/{id}/status`, field `state`, id `dataFlowId`). Its `sync` variants expect `200 STARTED` at once; this
data plane deploys the consumer's WorkflowApi first, so it answers as the `async` variant (DP_P_PULL:04-01) does,
`202 STARTING` and the `started` callback, and each scenario goes on from there.

Not ported: the push suites (this data plane serves pull only: a push start is refused, tested in
test_dataflows.py), the consumer-side suites (it is a provider's data plane: `started` notifications are refused),
and the Token Renewal part of DP_P_HTTP_PULL (below, expected to fail: not implemented).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from tests.backbone.conftest import endpoints, eventually
from tests.provisioning.test_dataflows import Site, site, token_of

__all__ = ["endpoints", "site"]

HTTP_PULL = "https://w3id.org/dspace-sig/profile/http-pull"
DATASET = "shell-count"


def tck_start(process: str, profile: str = "http-pull") -> dict[str, Any]:
    """DataFlowStartMessage as the kit's HttpDataPlaneClient.start writes it."""
    return {
        "messageId": str(uuid.uuid4()),
        "participantId": "did:web:tck-provider",
        "counterPartyId": "did:web:tck-consumer",
        "dataspaceContext": "tck-dataspace",
        "processId": process,
        "agreementId": str(uuid.uuid4()),
        "datasetId": DATASET,
        "profile": profile,
        "claims": {},
    }


def message() -> dict[str, Any]:
    return {"messageId": str(uuid.uuid4())}


async def status(provider: Site, process: str) -> str:
    """The kit's thenWaitForDataFlowToBeInState reads GET /dataflows/{id}/status."""
    response = await provider.http.get(f"/dataflows/{process}/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["dataFlowId"] == process
    state: str = body["state"]
    return state


async def in_state(provider: Site, process: str, state: str) -> None:
    async def reached() -> bool:
        return await status(provider, process) == state

    await eventually(reached, timeout=30)


async def started(provider: Site, profile: str = "http-pull") -> tuple[str, dict[str, Any]]:
    """Start as the kit does; the flow STARTED and the data address of its `started` callback."""
    process = str(uuid.uuid4())
    response = await provider.http.post("/dataflows/start", json=tck_start(process, profile))
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["dataFlowId"] == process and body["state"] == "STARTING"
    assert response.headers["location"].endswith(f"/dataflows/{process}")
    await in_state(provider, process, "STARTED")

    async def callback() -> list[dict[str, Any]]:
        return [c for c in provider.cp.callbacks("started") if c.get("dataFlowId") == process]

    (told,) = await eventually(callback)
    assert told["state"] == "STARTED" and told["dataAddress"] is not None
    return process, told["dataAddress"]


async def test_dp_p_pull_01_01_start_then_completed(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_PULL:01-01: a start is handled (a non-null data address) and the completed notification accepted."""
    provider = await site()
    process, address = await started(provider)
    assert address["endpoint"] and token_of(address)
    response = await provider.http.post(f"/dataflows/{process}/completed", json={})
    assert response.status_code == 200, response.text
    await in_state(provider, process, "COMPLETED")


async def test_dp_p_pull_01_02_start_then_terminate(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_PULL:01-02: a start is handled and the terminate message accepted."""
    provider = await site()
    process, _ = await started(provider)
    response = await provider.http.post(f"/dataflows/{process}/terminate", json={**message(), "reason": "any"})
    assert response.status_code == 200, response.text
    await in_state(provider, process, "TERMINATED")


async def test_dp_p_pull_02_01_suspend_then_resume(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_PULL:02-01: suspend and resume are handled; the resume answers STARTED."""
    provider = await site()
    process, address = await started(provider)
    assert (await provider.http.post(f"/dataflows/{process}/suspend", json=message())).status_code == 200
    await in_state(provider, process, "SUSPENDED")
    assert await provider.runs(token_of(address)) == 401
    response = await provider.http.post(f"/dataflows/{process}/resume", json=message())
    assert response.status_code == 200 and response.json()["state"] == "STARTED", response.text
    await in_state(provider, process, "STARTED")
    assert await provider.runs(token_of(response.json()["dataAddress"])) == 200


async def test_dp_p_pull_02_02_suspend_then_terminate(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_PULL:02-02: suspend is handled and the terminate message accepted."""
    provider = await site()
    process, _ = await started(provider)
    assert (await provider.http.post(f"/dataflows/{process}/suspend", json=message())).status_code == 200
    await in_state(provider, process, "SUSPENDED")
    response = await provider.http.post(f"/dataflows/{process}/terminate", json={**message(), "reason": "any"})
    assert response.status_code == 200, response.text
    await in_state(provider, process, "TERMINATED")


async def test_dp_p_pull_04_01_async_start_calls_started_back(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_PULL:04-01: 202 STARTING, then the `started` callback at /transfers/{processId}/dataflow/started, and
    the flow STARTED."""
    provider = await site()
    process, _ = await started(provider)
    paths = [path for path, _ in provider.cp.received]
    assert paths == [f"/api/signaling/transfers/{process}/dataflow/started"]


async def test_dp_p_http_pull_01_01_the_data_address_is_http_pull(site: Callable[..., Awaitable[Site]]) -> None:
    """DP_P_HTTP_PULL:01-01, its HTTP pull part: endpointType http-pull, an endpoint, authType bearer and an
    authorization (the kit also asks for an HTTPS endpoint: a deployment's WorkflowApi URL, http here)."""
    provider = await site()
    _, address = await started(provider, HTTP_PULL)
    assert address["endpointType"] == HTTP_PULL and address["endpoint"].startswith(("http://", "https://"))
    properties = {p["name"]: p["value"] for p in address["endpointProperties"]}
    assert properties["authType"] == "bearer" and properties["authorization"]
