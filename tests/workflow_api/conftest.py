"""The WorkflowApi on the session's real servers, with the jobs and results handlers behind it, and consumers whose
access is stored the way the provisioning handlers store it (grant, ready deployment, granted provision)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gxwf_client import WorkflowClient
from nats.js import JetStreamContext

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from adapters.servers import Servers
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.assets import WorkflowAssetDefinition
from schemas.provisioning import (
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
)
from tests.backbone.conftest import endpoints, eventually, js, nc, settings, store
from workflow_api.service import WorkflowApiService
from workflow_api.settings import WorkflowApiSettings

__all__ = ["endpoints", "eventually", "js", "nc", "settings", "store"]

UPLOAD_LIMIT = 1024 * 1024

COUNT_LINES = WorkflowAssetDefinition.model_validate(
    {
        "id": "count-lines",
        "title": "Count lines",
        "command": [
            "/bin/sh",
            "-c",
            'i=0; while [ "$i" -lt "$COUNT" ]; do echo "line $i $MODE"; i=$((i+1)); sleep 0.1; done; '
            "wc -l < inputs/text > outputs/count.txt; "
            'if [ -d data ]; then (cd data && find . -type f | sort) > outputs/listing.txt; fi; echo "done"',
        ],
        "inputs": [
            {"kind": "file", "name": "text", "path": "inputs/text"},
            {"kind": "directory", "name": "data", "path": "data", "required": False},
            {"kind": "parameter", "name": "COUNT", "type": "integer", "default": 2, "minimum": 1, "maximum": 50},
            {"kind": "parameter", "name": "MODE", "type": "string", "default": "fast", "choices": ["fast", "slow"]},
        ],
        "outputs": [{"name": "count", "path": "outputs/count.txt"}],
        "resources": {"cpu": 0.5, "memory": "1Gi"},
        "time_limits": {"pending_seconds": 60, "running_seconds": 60},
    }
)
SLEEPER = WorkflowAssetDefinition.model_validate(
    {
        "id": "sleeper",
        "title": "Sleeps",
        "command": ["/bin/sh", "-c", "echo sleeping; sleep 30"],
        "resources": {"cpu": 0.5, "memory": "1Gi"},
    }
)
HIDDEN = WorkflowAssetDefinition.model_validate(
    {"id": "hidden", "title": "Offered to nobody here", "command": ["/bin/true"]}
)


@dataclass
class Api:
    url: str
    store: MongoStateStore
    service: WorkflowApiService
    handlers: HandlerService | None
    settings: Settings

    async def consumer(
        self,
        consumer_id: str | None = None,
        assets: tuple[str, ...] = ("count-lines", "sleeper"),
        *,
        deprovisioned: str | None = None,
    ) -> tuple[str, str]:
        """A consumer with access as provisioning leaves it: its id and its plain token."""
        consumer_id = consumer_id or f"did:web:{uuid.uuid4().hex[:8]}.example"
        token = secrets.token_urlsafe(32)
        for asset in assets:
            tp = f"tp-{uuid.uuid4().hex[:10]}"
            deployment = f"dep-{uuid.uuid4().hex[:10]}"
            grant = AccessGrantDocument(
                id=tp,
                state=AccessState.REVOKED if deprovisioned else AccessState.ACTIVE,
                transfer_process_id=tp,
                consumer_id=consumer_id,
                token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                workflow_api_url=self.url,
                asset_ids=[asset],
            )
            provision = ProvisionDocument(
                id=tp,
                state=ProvisionState.DEPROVISIONED if deprovisioned else ProvisionState.GRANTED,
                connector="default",
                consumer_id=consumer_id,
                asset_id=asset,
                asset_version=1,
                deployment_id=deployment,
                deprovision_reason=deprovisioned,
            )
            dep = DeploymentDocument(
                id=deployment,
                state=DeploymentState.DELETED if deprovisioned else DeploymentState.READY,
                transfer_process_id=tp,
                consumer_id=consumer_id,
                workflow_api_url=self.url,
                registered_assets=[{"asset_id": asset, "version": 1}],
            )
            for doc in (grant, provision, dep):
                await self.store.db[doc.collection].insert_one(doc.to_store())
        return consumer_id, token

    def client(self, token: str) -> WorkflowClient:
        return WorkflowClient(self.url, token, timeout=30)

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


def api_settings(**overrides: object) -> WorkflowApiSettings:
    values: dict[str, object] = {
        "workflow_api_upload_limit_bytes": UPLOAD_LIMIT,
        "workflow_api_archive_files_limit": 20,
        "workflow_api_archive_bytes_limit": 2 * UPLOAD_LIMIT,
        "workflow_api_log_poll_seconds": 0.05,
        # The tests of what a deprovisioned consumer may still do run within an operator's grace period.
        "workflow_api_revoked_grace_seconds": 3600,
    }
    return WorkflowApiSettings(_env_file=None, **(values | overrides))  # type: ignore[call-arg, arg-type]


def api_service(
    settings: Settings, endpoints: Endpoints, state_dir: Path | None = None, **overrides: object
) -> WorkflowApiService:
    """A WorkflowApi on the test's database; `state_dir` elsewhere than the handlers': no run directories beside it."""
    return WorkflowApiService(
        Servers(
            nats=endpoints.as_component("workflow_api").nats,
            mongo=endpoints.mongo,
            mongo_database=settings.mongo_database,
            s3=endpoints.s3,
            s3_bucket=settings.s3_bucket,
            s3_access_key=endpoints.s3_access_key,
            s3_secret_key=endpoints.s3_secret_key,
        ),
        state_dir or settings.state_dir,
        port=0,
        settings=api_settings(**overrides),
    )


async def start_api(
    settings: Settings, endpoints: Endpoints, store: MongoStateStore, *, handlers: bool
) -> tuple[Api, list[object]]:
    catalogue = MongoAssetCatalogue(store.db)
    for definition in (COUNT_LINES, SLEEPER, HIDDEN):
        await catalogue.apply(definition)
    service: HandlerService | None = None
    if handlers:
        service = HandlerService(settings, endpoints)
        await service.start()
    api = api_service(settings, endpoints)
    url = await api.start()
    return Api(url, store, api, service, settings), [api, service]


@pytest.fixture
async def api(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    """The WorkflowApi with every handler behind it: runs really run on the local backend."""
    running, _ = await start_api(settings, endpoints, store, handlers=True)
    yield running
    await running.service.stop()
    if running.handlers is not None:
        await running.handlers.stop()


@pytest.fixture
async def api_only(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    """The WorkflowApi alone: commands are published and nothing handles them (for request checks)."""
    running, _ = await start_api(settings, endpoints, store, handlers=False)
    yield running
    await running.service.stop()


async def run_finished(api: Api, client: WorkflowClient, run_id: str, timeout: float = 30.0) -> object:
    async def check() -> object:
        status = await client.run(run_id)
        return status if status.finished and status.results_url else None

    return await eventually(check, timeout=timeout)
