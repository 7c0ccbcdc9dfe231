"""A per-consumer WorkflowApi configured with nothing but the tenant gateway's URL and its token serves its consumer
end to end: assets, uploads (a file, a directory, a presigned PUT), a run started, its log followed from the log
stream, its results downloaded (streamed, by range, presigned), its inputs listed and removed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from gxwf_client import WorkflowClient
from gxwf_client.client import end_state

from adapters.mongo_store import MongoStateStore
from adapters.servers import Servers
from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from http_serving.server import free_port
from schemas import tenant_gateway
from schemas.provisioning import DeploymentDocument
from tenant_gateway.service import TenantGatewayService
from tenant_gateway.settings import TenantGatewaySettings
from tests.workflow_api.conftest import Api, api_settings, eventually, run_finished
from workflow_api.service import Gateway, WorkflowApiService

pytestmark = pytest.mark.servers


def gateway_service(settings: Settings, endpoints: Endpoints, **overrides: object) -> TenantGatewayService:
    assert settings.gateway_key is not None
    configured = TenantGatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        gateway_key=settings.gateway_key,
        **overrides,  # type: ignore[arg-type]
    )
    servers = Servers(
        # Its own NATS user, as `gxwf up` and the kustomize base give it: the WorkflowApi's permissions.
        nats=endpoints.as_component("tenant_gateway").nats,
        mongo=endpoints.mongo,
        mongo_database=settings.mongo_database,
        s3=endpoints.s3,
        s3_bucket=settings.s3_bucket,
        s3_access_key=settings.s3_access_key,
        s3_secret_key=settings.s3_secret_key.get_secret_value(),
    )
    return TenantGatewayService(servers, configured, port=0)


@pytest.fixture
async def gateway_url(settings: Settings, endpoints: Endpoints, store: MongoStateStore) -> AsyncIterator[str]:
    service = gateway_service(settings, endpoints)
    url = await service.start()
    yield url
    await service.stop()


async def test_a_workflow_api_with_only_the_gateway_serves_its_consumer(
    api: Api, settings: Settings, gateway_url: str, tmp_path: Path
) -> None:
    consumer_id, token = await api.consumer()
    (deployment, *_) = await api.store.find(DeploymentDocument, consumer_id=consumer_id)
    assert settings.gateway_key is not None
    minted = tenant_gateway.mint(settings.gateway_key.get_secret_value(), deployment.id)
    # No run directory beside it (as on a Kubernetes site), no server setting: the gateway is all it has.
    remote = WorkflowApiService(
        Gateway(gateway_url, minted), tmp_path / "elsewhere", port=0, settings=api_settings(consumer_id=consumer_id)
    )
    url = await remote.start()
    try:
        async with httpx.AsyncClient(base_url=url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {"tenant-gateway": "ok"}
        text = tmp_path / "t.txt"
        text.write_text("a\nb\nc\n")
        data = tmp_path / "data"
        (data / "sub").mkdir(parents=True)
        (data / "one.csv").write_text("1\n")
        (data / "sub" / "two.csv").write_text("2\n")
        async with WorkflowClient(url, token, timeout=30) as client:
            assert {a.id for a in await client.assets()} == {"count-lines", "sleeper"}
            uploaded = await client.upload_file(text, "text")
            assert uploaded.sha256 == hashlib.sha256(b"a\nb\nc\n").hexdigest() and uploaded.state == "ready"
            folder = await client.upload_directory(data, "data")
            assert folder.file_count == 2
            accepted = await client.start_run(
                "count-lines", parameters={"COUNT": 20}, inputs={"text": uploaded.id, "data": folder.id}
            )

            async def partial_log() -> str | None:
                # Read while the run runs: the text is what the log stream held, through the gateway.
                text = await client.logs(accepted.run_id)
                return text if text and (await client.run(accepted.run_id)).state == "running" else None

            assert (await eventually(partial_log, timeout=20)).startswith("line 0 fast\n")
            events = [event async for event in client.follow_logs(accepted.run_id)]
            logged = "\n".join(e.data for e in events if e.kind == "log")
            assert logged.startswith("\n".join(f"line {i} fast" for i in range(20))), events
            assert end_state(events[-1])["state"] == "succeeded"
            await run_finished(api, client, accepted.run_id)
            count = await client.download(accepted.run_id, "count.txt", tmp_path / "out" / "count.txt")
            assert count.read_text().strip() == "3", "three lines in the text input"
            archive = await client.download_archive(accepted.run_id, tmp_path / "all.zip")
            with zipfile.ZipFile(archive) as zipped:
                assert sorted(zipped.namelist()) == ["log.txt", "outputs/count.txt", "outputs/listing.txt"]
            assert [r.id for r in await client.runs()] == [accepted.run_id]
            assert {i.id for i in await client.inputs()} == {uploaded.id, folder.id}
            await client.delete_input(folder.id)
            assert {i.id for i in await client.inputs()} == {uploaded.id}
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            path = f"/v1/runs/{accepted.run_id}/results/files/count.txt"
            first = await http.get(path, headers={"Range": "bytes=0-0"})
            assert first.status_code == 206 and first.content == b"3"
            presigned = await http.get(f"/v1/runs/{accepted.run_id}/results/urls/count.txt")
            direct = await http.get(presigned.json()["url"], headers={"Authorization": ""})
            assert direct.status_code == 200 and direct.content.strip() == b"3"
            # A presigned upload: announced, PUT straight to the object store, completed (checked) here.
            body = b"presigned\n"
            announced = await http.post(
                "/v1/inputs/uploads",
                json={"name": "text", "size": len(body), "sha256": hashlib.sha256(body).hexdigest()},
            )
            assert announced.status_code in (200, 201), announced.text
            headers = {"Authorization": ""} | announced.json()["headers"]
            # Bound to the announced sha256 through the gateway too: other bytes are refused.
            other = await http.put(announced.json()["url"], content=b"other\n", headers=headers)
            assert other.status_code == 400, other.text
            put = await http.put(announced.json()["url"], content=body, headers=headers)
            assert put.status_code == 200, put.text
            done = await http.post(f"/v1/inputs/{announced.json()['input']['id']}/complete")
            assert done.status_code == 200 and done.json()["state"] == "ready", done.text
    finally:
        await remote.stop()


async def test_gxwf_workflow_api_starts_with_the_gateway_and_no_server_setting(
    api_only: Api, settings: Settings, gateway_url: str, tmp_path: Path
) -> None:
    """The command a per-consumer pod runs, with the environment its Secret gives it: no endpoints.json, no
    NATS, MongoDB or S3 setting."""
    consumer_id, token = await api_only.consumer()
    (deployment, *_) = await api_only.store.find(DeploymentDocument, consumer_id=consumer_id)
    assert settings.gateway_key is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= {
        "GXWF_STATE_DIR": str(tmp_path / "pod"),
        "GXWF_CONSUMER_ID": consumer_id,
        "GXWF_WORKFLOW_API_GATEWAY_URL": gateway_url,
        "GXWF_WORKFLOW_API_GATEWAY_TOKEN": tenant_gateway.mint(settings.gateway_key.get_secret_value(), deployment.id),
    }
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gxwf",
        "workflow-api",
        "--port",
        str(port),
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            while b"workflow api listening on" not in (line := await process.stdout.readline()):
                assert line, "the process ended before it listened"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            ready = await http.get("/readyz")
            assert ready.json() == {"ready": True, "checks": {"tenant-gateway": "ok"}}
            assets = await http.get("/v1/assets", headers={"Authorization": f"Bearer {token}"})
            assert assets.status_code == 200 and {a["id"] for a in assets.json()["items"]} == {"count-lines", "sleeper"}
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 20)
