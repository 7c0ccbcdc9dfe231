"""The connection to one cluster: its configuration (read on first use), the API clients, and, with `watch`,
list+watch caches of our Jobs and pods, from which the watcher's status questions are answered at no API cost.
Also where each run's Jobs are: found once, from the cache or the API, then remembered."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import (
    ApiClient,
    ApiException,
    BatchV1Api,
    Configuration,
    CoreV1Api,
    NetworkingV1Api,
)
from kubernetes_asyncio.config import load_incluster_config, load_kube_config

from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.informer import Informer


class Cluster:
    """Give it an ApiClient, or a kubeconfig (None: in-cluster when run in a pod, else ~/.kube/config) that it
    reads on first use, so it can be built where nothing may be awaited (a service's constructor)."""

    core: CoreV1Api
    batch: BatchV1Api
    networking: NetworkingV1Api

    def __init__(
        self,
        api: ApiClient | None = None,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        watch: bool = False,
        watch_seconds: int = 300,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._context = context
        self._api: ApiClient | None = None
        self._owns_client = False
        if api is not None:
            self._attach(api)
        self._lock = asyncio.Lock()
        # Where each run's Jobs are: it only saves calls, and is found again from the cluster by a new process.
        self._namespaces: dict[str, str] = {}
        self._watch = watch
        self._watch_seconds = watch_seconds
        self.jobs: Informer | None = None
        self.pods: Informer | None = None

    async def connect(self) -> None:
        if self._api is None:
            await self._load_config()
        if self._watch and self.jobs is None:
            selector = ",".join(f"{k}={v}" for k, v in manifests.MANAGED_BY.items())
            self.jobs = Informer(
                self.batch.list_job_for_all_namespaces, selector, self.plain, watch_seconds=self._watch_seconds
            )
            self.pods = Informer(
                self.core.list_pod_for_all_namespaces,
                selector,
                self.plain,
                watch_seconds=self._watch_seconds,
                index=attempt_of,
            )
            self.jobs.start()
            self.pods.start()

    async def _load_config(self) -> None:
        async with self._lock:
            if self._api is not None:
                return
            configuration = Configuration()
            if self._kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                await load_kube_config(
                    config_file=str(self._kubeconfig) if self._kubeconfig else None,
                    context=self._context,
                    client_configuration=configuration,
                )
            self._attach(ApiClient(configuration))
            self._owns_client = True

    def _attach(self, api: ApiClient) -> None:
        self._api = api
        self.core = CoreV1Api(api)
        self.batch = BatchV1Api(api)
        self.networking = NetworkingV1Api(api)

    async def close(self) -> None:
        for informer in (self.jobs, self.pods):
            if informer is not None:
                await informer.stop()
        self.jobs = self.pods = None
        if self._owns_client and self._api is not None:
            await self._api.close()
            self._api = None

    def plain(self, obj: Any) -> dict[str, Any]:
        # The API's own field names (camelCase), as the status rules and the manifests are written.
        assert self._api is not None
        plain: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return plain

    async def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await self.batch.read_namespaced_job(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self.plain(job)

    async def run_jobs(self, namespace: str, run_id: str) -> list[Any]:
        """Every Job of the run (every attempt), from the API."""
        jobs = await self.batch.list_namespaced_job(namespace, label_selector=manifests.run_selector(run_id))
        return list(jobs.items)

    async def delete_job(self, namespace: str, name: str, *, propagation: str = "Foreground") -> None:
        try:
            await self.batch.delete_namespaced_job(name, namespace, propagation_policy=propagation)
        except ApiException as error:
            if error.status != 404:
                raise

    @staticmethod
    async def create_if_missing(call: Any) -> None:
        try:
            await call
        except ApiException as error:
            if error.status != 409:
                raise

    def synced(self) -> bool:
        return (
            self.jobs is not None and self.pods is not None and self.jobs.synced.is_set() and self.pods.synced.is_set()
        )

    def cached(
        self, namespace: str, name: str, run_id: str, attempt: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The Job and its pods from the caches; None when not synced or the Job is not (yet) there, since
        a Job created a moment ago may not have reached the cache: the API decides whether it is gone."""
        if not self.synced() or self.jobs is None or self.pods is None:
            return None
        job = self.jobs.items.get((namespace, name))
        if job is None:
            return None
        pods = self.pods.indexed((namespace, manifests.run_label(run_id), str(attempt)))
        return job, pods

    def remember(self, run_id: str, namespace: str) -> None:
        self._namespaces[run_id] = namespace

    def forget(self, run_id: str) -> None:
        self._namespaces.pop(run_id, None)

    async def namespace_of(self, run_id: str) -> str | None:
        """Where the run's Jobs are: remembered from the start, else found by the run's label."""
        if (namespace := self._namespaces.get(run_id)) is not None:
            return namespace
        if self.synced() and self.jobs is not None:
            label = manifests.run_label(run_id)
            for job in self.jobs.values():
                if ((job.get("metadata") or {}).get("labels") or {}).get(manifests.RUN_LABEL) == label:
                    self._namespaces[run_id] = str(job["metadata"]["namespace"])
                    return self._namespaces[run_id]
        jobs = await self.batch.list_job_for_all_namespaces(label_selector=manifests.run_selector(run_id), limit=1)
        if not jobs.items:
            return None
        namespace = str(jobs.items[0].metadata.namespace)
        self._namespaces[run_id] = namespace
        return namespace


def api_message(error: ApiException) -> str:
    """The Status message the API server sent (what is wrong with the object), else the HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason or error.status)[:500]


def attempt_of(pod: dict[str, Any]) -> tuple[str, str, str]:
    """Which run attempt a pod belongs to: the key the pod cache is indexed by."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (
        str(metadata.get("namespace") or ""),
        str(labels.get(manifests.RUN_LABEL) or ""),
        str(labels.get(manifests.ATTEMPT_LABEL) or ""),
    )
