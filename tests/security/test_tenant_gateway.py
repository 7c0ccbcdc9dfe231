"""Attack: one consumer's WorkflowApi on a Kubernetes site is compromised (or its Secret read). What it holds must
reach that consumer's data only: no server credential, and a gateway token that answers nothing of another
consumer, and nothing once its deployment is gone.

Consumers A and B are provisioned on a Kubernetes site (the fake API server, every object validated) through the
real ingress and handlers; the credentials are taken from A's Secret as the deployment handler wrote it, and used
against the real tenant gateway on the real servers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.js import JetStreamContext

from adapters.jetstream_logs import JetStreamLogSink
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec, RunStopRequested
from fakekube import FakeKubeServer
from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from schemas import tenant_gateway
from schemas.inputs import InputDocument, InputState
from schemas.names import input_prefix, result_prefix
from schemas.provisioning import DeploymentDocument, ProvisionDocument
from schemas.run import RunDocument, RunState
from schemas.tenancy import tenant_id
from tests.backbone.conftest import endpoints, eventually, js, nc, settings, store, stream_events
from tests.provisioning.conftest import Provider, StartProvider, start_provider
from tests.workflow_api.test_tenant_gateway import gateway_service

__all__ = ["endpoints", "js", "nc", "settings", "start_provider", "store"]

pytestmark = pytest.mark.servers

A_EDC = "did:web:consumer-a.example"
B_EDC = "did:web:consumer-b.example"
# The tenants the provider's connector ("default") sells to: what runs, inputs, results and grants are keyed by.
A = tenant_id("default", A_EDC)
B = tenant_id("default", B_EDC)
# What a WorkflowApi needed before to reach the servers: none of it may be in a per-consumer Secret.
SERVER_SETTINGS = {
    "GXWF_NATS_URL",
    "GXWF_MONGO_URL",
    "GXWF_MONGO_DATABASE",
    "GXWF_S3_ENDPOINT",
    "GXWF_S3_BUCKET",
    "GXWF_S3_ACCESS_KEY",
    "GXWF_S3_SECRET_KEY",
}


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeServer]:
    async with FakeKubeServer(validate="1.33.0") as server:
        yield server


def sites_file(tmp_path: Path, kube: FakeKubeServer) -> Path:
    path = tmp_path / "sites.yaml"
    site = {
        "name": "cloud",
        "backend": "kubernetes",
        "kubernetes": {"kubeconfig": str(kube.kubeconfig_path), "context": "fakekube"},
        "capabilities": {"cpu": 8, "memory": "16Gi"},
    }
    path.write_text(json.dumps({"sites": [site]}))
    return path


def secret_of(kube: FakeKubeServer, deployment_id: str) -> dict[str, str]:
    secret = kube.get("Secret", "workflow-api-config", f"gxwf-{deployment_id}")
    assert secret is not None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def granted(provider: Provider, consumer_id: str) -> ProvisionDocument:
    transfer = await provider.begin(consumer_id=consumer_id)
    return await provider.reaches(transfer.id, "granted")


async def seed_run(provider: Provider, js: JetStreamContext, consumer_id: str, run_id: str, tp: str) -> dict[str, str]:
    """A run of the consumer as the handlers leave it: its document, a live log chunk, an input and a result."""
    run = RunDocument(
        id=run_id, state=RunState.QUEUED, consumer_id=consumer_id, transfer_process_id=tp, asset_id="shell-count"
    )
    await provider.store.create(run, event_id=f"seed:{run_id}")
    await JetStreamLogSink(js).append(run_id, 1, 0, f"secret log of {consumer_id}\n".encode())
    input_id = f"in-{run_id}"
    prefix = input_prefix(consumer_id, input_id)
    doc = InputDocument(
        id=input_id, state=InputState.UPLOADING, consumer_id=consumer_id, name="text", kind="file", prefix=prefix
    )
    await provider.store.create(doc, event_id=f"seed:{input_id}")
    objects = provider.handlers.objects
    input_key = (await objects.put_bytes(prefix + "text", b"private input")).key
    result_key = (await objects.put_bytes(result_prefix(consumer_id, run_id) + "log.txt", b"private result")).key
    return {"run": run_id, "input": input_id, "input_key": input_key, "result_key": result_key}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


def run_event(consumer_id: str, run_id: str, tp: str | None = None, asset: str = "carla-minimal") -> dict[str, Any]:
    spec = RunSpec(image="busybox:1.36", command=["sh", "-c", "cat /etc/passwd"], cpu=1, memory_mb=256)
    command = RunRequested(run_id=run_id, consumer_id=consumer_id, transfer_process_id=tp, asset_id=asset, spec=spec)
    return new_event(s.RUN_REQUESTED, command, subject=run_id).model_dump(mode="json")


async def test_a_consumers_workflow_api_credentials_reach_no_other_consumers_data(
    start_provider: StartProvider,
    kube: FakeKubeServer,
    js: JetStreamContext,
    settings: Settings,
    endpoints: Endpoints,
    tmp_path: Path,
) -> None:
    provider = await start_provider(sites_file=sites_file(tmp_path, kube))
    doc_a, doc_b = await granted(provider, A_EDC), await granted(provider, B_EDC)
    assert doc_a.deployment_id and doc_b.deployment_id
    assert (doc_a.consumer_id, doc_b.consumer_id) == (A, B)

    # What the deployment handler handed A's WorkflowApi: no server URL, no server credential, only its token.
    handed = secret_of(kube, doc_a.deployment_id)
    assert not SERVER_SETTINGS & set(handed), sorted(SERVER_SETTINGS & set(handed))
    secrets = [endpoints.mongo, endpoints.nats, settings.s3_secret_key.get_secret_value()]
    assert not [v for v in handed.values() if any(secret in v for secret in secrets)]
    token = handed["GXWF_WORKFLOW_API_GATEWAY_TOKEN"]
    assert handed["GXWF_WORKFLOW_API_GATEWAY_URL"] == settings.tenant_gateway_url
    assert token != secret_of(kube, doc_b.deployment_id)["GXWF_WORKFLOW_API_GATEWAY_TOKEN"]

    mine = await seed_run(provider, js, A, "run-a", doc_a.id)
    theirs = await seed_run(provider, js, B, "run-b", doc_b.id)
    gateway = gateway_service(settings, endpoints, tenant_gateway_auth_cache_seconds=0)
    url = await gateway.start()
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            # The token works for A's own data: every refusal below is about B, not a broken token.
            own = await http.get(f"/v1/documents/runs/{mine['run']}")
            assert own.status_code == 200 and own.json()["consumer_id"] == A
            own_object = await http.get("/v1/objects/content", params={"key": mine["input_key"]})
            assert own_object.content == b"private input"
            async with http.stream("GET", f"/v1/logs/{mine['run']}", params={"idle_seconds": 0.1}) as log:
                first = await anext(log.aiter_bytes())
            assert b"secret log of " + A.encode() in first

            # B's documents: 404, as unknown ones.
            for kind, doc_id in [
                ("runs", theirs["run"]),
                ("inputs", theirs["input"]),
                ("provisions", doc_b.id),
                ("deployments", doc_b.deployment_id),
                ("grants", doc_b.id),
            ]:
                problem(await http.get(f"/v1/documents/{kind}/{doc_id}"), 404)
            grants = await http.get("/v1/documents/grants")
            assert grants.status_code == 200 and {g["consumer_id"] for g in grants.json()} == {A}
            by_transfer = await http.get("/v1/documents/deployments", params={"transfer_process_id": doc_b.id})
            assert by_transfer.json() == []
            problem(await http.get(f"/v1/run-requests/{theirs['run']}"), 404)

            # B's objects: not readable, listable, presignable or deletable; no key climbs out of A's prefix.
            for key in (theirs["input_key"], theirs["result_key"]):
                problem(await http.get("/v1/objects/content", params={"key": key}), 403)
                problem(await http.get("/v1/objects/head", params={"key": key}), 403)
                for method in ("GET", "PUT"):
                    presign = {"method": method, "key": key, "expires_seconds": 60}
                    problem(await http.post("/v1/objects/presign", json=presign), 403)
                problem(await http.put("/v1/objects/content", params={"key": key}, content=b"overwritten"), 403)
            problem(await http.get("/v1/objects/list", params={"prefix": "inputs/"}), 403)
            # A's own results are the results handler's: A's WorkflowApi reads them, it does not write them.
            problem(await http.put("/v1/objects/content", params={"key": mine["result_key"]}, content=b"forged"), 403)
            presign_put = {"method": "PUT", "key": mine["result_key"], "expires_seconds": 60}
            problem(await http.post("/v1/objects/presign", json=presign_put), 403)
            problem(await http.post("/v1/objects/delete", json={"keys": [theirs["input_key"]]}), 403)
            climbing = mine["input_key"].rsplit("/", 3)[0] + "/../" + theirs["input_key"].split("/", 1)[1]
            problem(await http.get("/v1/objects/content", params={"key": climbing}), 422)
            assert await provider.handlers.objects.get_bytes(theirs["input_key"]) == b"private input"

            # Commands for B: a run for B, a stop of B's run, A's run id pointed at B's run or transfer.
            def refused_at(response: httpx.Response) -> str:
                return str(problem(response, 403)["errors"][0]["field"])

            assert refused_at(await http.post("/v1/events", json=run_event(B, "run-evil"))) == "data.consumer_id"
            stop = RunStopRequested(run_id=theirs["run"], consumer_id=B)
            problem(
                await http.post("/v1/events", json=new_event(s.RUN_STOP_REQUESTED, stop).model_dump(mode="json")), 403
            )
            assert refused_at(await http.post("/v1/events", json=run_event(A, theirs["run"]))) == "data.run_id"
            evil = run_event(A, "run-evil-2", doc_b.id)
            assert refused_at(await http.post("/v1/events", json=evil)) == "data.transfer_process_id"
            # Nor an asset that was not offered to A, on a site none of its WorkflowApis is on.
            assert refused_at(await http.post("/v1/events", json=run_event(A, "run-evil-4"))) == "data.asset_id"
            elsewhere = run_event(A, "run-evil-5", doc_a.id, asset="shell-count")
            elsewhere["data"]["site"] = "another-site"
            assert refused_at(await http.post("/v1/events", json=elsewhere)) == "data.site"
            # A's own start is published: the refusals above are about what they name.
            own_start = await http.post("/v1/events", json=run_event(A, "run-a-2", doc_a.id, asset="shell-count"))
            assert own_start.status_code == 202, own_start.text
            # Any other event is none of a WorkflowApi's business.
            other = {**run_event(A, "run-evil-3"), "type": s.CONSUMER_DEPROVISIONED}
            problem(await http.post("/v1/events", json=other), 422)
            published = await stream_events(js, s.RUN_REQUESTED, wait=False)
            assert [(e["data"]["consumer_id"], e["data"]["run_id"]) for e in published] == [(A, "run-a-2")]
            assert await stream_events(js, s.RUN_STOP_REQUESTED, wait=False) == []

            # Writes of B's documents.
            forged = InputDocument(
                id="in-forged",
                state=InputState.UPLOADING,
                consumer_id=B,
                name="x",
                kind="file",
                prefix=input_prefix(B, "in-forged"),
            )
            body = {"document": forged.model_dump(mode="json", by_alias=True), "event_id": "e"}
            problem(await http.post("/v1/inputs", json=body), 403)
            problem(await http.delete(f"/v1/inputs/{theirs['input']}"), 404)
            assert await provider.store.get(InputDocument, theirs["input"]) is not None

            # Bodies are capped before they are parsed.
            huge = b'{"type": "' + b"x" * (1024 * 1024) + b'"}'
            problem(await http.post("/v1/events", content=huge, headers={"Content-Type": "application/json"}), 413)

            # B's run's download lease and live log.
            lease = await http.post(
                f"/v1/leases/result-download:{theirs['run']}", json={"holder": "x", "ttl_seconds": 60}
            )
            problem(lease, 404)
            problem(await http.get(f"/v1/logs/{theirs['run']}"), 404)

        # A token with a wrong mac, one minted with another key, none: 401.
        assert settings.gateway_key is not None
        forged_tokens = [
            token[:-4] + ("0000" if not token.endswith("0000") else "1111"),
            tenant_gateway.mint("another-key", doc_b.deployment_id),
            f"gw1.{doc_b.deployment_id}.",
        ]
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for forged_token in forged_tokens:
                refused = await http.get(
                    f"/v1/documents/runs/{theirs['run']}", headers={"Authorization": f"Bearer {forged_token}"}
                )
                assert problem(refused, 401)["errors"][0]["field"] == "Authorization"
            problem(await http.get(f"/v1/documents/runs/{mine['run']}"), 401)

        # A's transfer ends: its deployment is deleted, and its token with it.
        transfer_a = next(t for t in provider.sim.ledger.transfers.values() if t.id == doc_a.id)
        await provider.deprovision(transfer_a)
        await provider.reaches(doc_a.id, "deprovisioned")

        async def deleted() -> bool:
            dep = await provider.store.get(DeploymentDocument, doc_a.deployment_id or "")
            return dep is not None and dep.state == "deleted"

        await eventually(deleted)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            problem(await http.get(f"/v1/documents/runs/{mine['run']}"), 401)
    finally:
        await gateway.stop()
