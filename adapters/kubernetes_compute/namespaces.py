"""Each consumer's runs namespace: made when its first run starts (with the ServiceAccount its pods run as and
the guards its site demands: network policy, quota, limit range), deleted whole when the consumer is released."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubernetes_asyncio.client import ApiException

from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.connection import Cluster
from adapters.kubernetes_compute.egress import RunEgress
from ports.compute import RunOwner
from schemas.sites import ConsumerQuota


class ConsumerNamespaces:
    def __init__(
        self, cluster: Cluster, egress: RunEgress | None = None, scratch_size_limit: str = manifests.SCRATCH_SIZE_LIMIT
    ) -> None:
        self.cluster = cluster
        self.egress = egress
        self.scratch_size_limit = scratch_size_limit
        # Namespaces known to be ready: it only saves calls, and a new process finds them ready by its 409s.
        self._prepared: set[str] = set()

    async def prepare(self, owner: RunOwner, quota: ConsumerQuota) -> None:
        """The consumer's namespace and the run pods' ServiceAccount, created if missing."""
        namespace = manifests.namespace_name(owner.consumer_id)
        if namespace in self._prepared:
            return
        cluster = self.cluster
        namespace_body: Any = manifests.namespace(owner)
        account_body: Any = manifests.service_account(owner)
        await cluster.create_if_missing(cluster.core.create_namespace(namespace_body))
        await cluster.create_if_missing(cluster.core.create_namespaced_service_account(namespace, account_body))
        for guard in manifests.guards(owner, quota, self.egress, self.scratch_size_limit):
            body: Any = guard
            match guard["kind"]:
                case "NetworkPolicy":
                    await cluster.create_if_missing(
                        cluster.networking.create_namespaced_network_policy(namespace, body)
                    )
                case "ResourceQuota":
                    await cluster.create_if_missing(cluster.core.create_namespaced_resource_quota(namespace, body))
                case "LimitRange":
                    await cluster.create_if_missing(cluster.core.create_namespaced_limit_range(namespace, body))
        self._prepared.add(namespace)

    def forget(self, namespace: str) -> None:
        """The namespace went away (a teardown elsewhere, or ours): prepare it afresh next time."""
        self._prepared.discard(namespace)

    async def delete(self, namespace: str) -> None:
        """Ask for the namespace to go (everything in it goes with it); `wait_gone` confirms it."""
        self.forget(namespace)
        try:
            await self.cluster.core.delete_namespace(namespace, propagation_policy="Foreground")
        except ApiException as error:
            if error.status != 404:
                raise

    async def wait_gone(self, namespace: str, *, timeout_seconds: float, poll_seconds: float) -> bool:
        """True once the namespace is gone; False if it outlives the bound (its finalizers still at work)."""
        core = self.cluster.core
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                await core.read_namespace(namespace)
            except ApiException as error:
                if error.status == 404:
                    return True
                raise
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(poll_seconds)
