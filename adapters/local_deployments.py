"""The local deployment backend: the shared WorkflowApi process serves every consumer, told apart by token, so
deploying means giving the consumer its own directory and recording which transfer it serves."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path

from ports.deployments import DeploymentSpec


def consumer_key(consumer_id: str) -> str:
    """A directory name for a consumer id (DIDs and BPNs hold characters no path should)."""
    return "c-" + hashlib.sha256(consumer_id.encode()).hexdigest()[:16]


class LocalDeploymentBackend:
    name = "local"

    def __init__(self, root: Path, workflow_api_url: str) -> None:
        self.root = root
        self.workflow_api_url = workflow_api_url.rstrip("/")

    def consumer_dir(self, consumer_id: str) -> Path:
        return self.root / consumer_key(consumer_id)

    def _record(self, spec: DeploymentSpec) -> Path:
        return self.consumer_dir(spec.consumer_id) / "deployments" / f"{spec.deployment_id}.json"

    async def deploy(self, spec: DeploymentSpec) -> str:
        await asyncio.to_thread(self._write, spec)
        return self.workflow_api_url

    def _write(self, spec: DeploymentSpec) -> None:
        home = self.consumer_dir(spec.consumer_id)
        for sub in ("inputs", "deployments"):
            (home / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        record = {
            "deployment_id": spec.deployment_id,
            "transfer_process_id": spec.transfer_process_id,
            "consumer_id": spec.consumer_id,
            "asset_id": spec.asset.asset_id,
            "asset_version": spec.asset.version,
            "site": spec.site.name,
        }
        path = self._record(spec)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(path)

    async def delete(self, spec: DeploymentSpec) -> bool:
        await asyncio.to_thread(self._remove, spec)
        return not self._record(spec).exists()

    def _remove(self, spec: DeploymentSpec) -> None:
        self._record(spec).unlink(missing_ok=True)
        home = self.consumer_dir(spec.consumer_id)
        left = list((home / "deployments").glob("*.json")) if (home / "deployments").exists() else []
        if not left:
            # The consumer's last transfer ended: its uploaded inputs go too (results stay in the object store).
            shutil.rmtree(home, ignore_errors=True)
