"""Where a consumer's WorkflowApi is deployed: one backend per kind of site (local, kubernetes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.assets import StoredAsset
from schemas.sites import Site


@dataclass(frozen=True)
class DeploymentSpec:
    deployment_id: str
    transfer_process_id: str
    consumer_id: str
    asset: StoredAsset
    site: Site


class DeploymentError(Exception):
    """The backend could not deploy; `retryable` when trying again later may work (API 5xx, timeouts)."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


class DeploymentBackend(Protocol):
    name: str

    async def deploy(self, spec: DeploymentSpec) -> str:
        """Create or update everything the consumer's WorkflowApi needs, wait until it answers, and return its
        URL. Deploying again changes nothing."""
        ...

    async def delete(self, spec: DeploymentSpec) -> bool:
        """Remove everything deploy created; True once confirmed gone (also when it never existed)."""
        ...
