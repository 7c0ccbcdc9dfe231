"""The Kubernetes compute backend, the port's face: each attempt of a run is a batch/v1 Job in its consumer's
namespace. What each step does is in its own module; this one decides which steps a port call takes.

Artifacts: the log, read from the run's pods (every attempt) into `log_dir`, and the last attempt's uploaded
outputs, unpacked there, for the results handler."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from kubernetes_asyncio.client import ApiClient, ApiException, BatchV1Api, CoreV1Api

from adapters.kubernetes_compute import jobs, logs, manifests, staging
from adapters.kubernetes_compute.connection import Cluster
from adapters.kubernetes_compute.egress import RunEgress, run_egress
from adapters.kubernetes_compute.informer import Informer
from adapters.kubernetes_compute.namespaces import ConsumerNamespaces
from events.payloads.run import RunSpec
from ports.compute import RunArtifacts, RunOwner, StartRefused, WorkloadPhase, WorkloadStatus
from ports.objects import ObjectStore
from schemas.sites import ConsumerQuota

log = structlog.get_logger("gxwf.kubernetes.compute")


class KubernetesJobBackend:
    """Give it an ApiClient, or a kubeconfig (None: in-cluster when run in a pod, else ~/.kube/config) that
    it reads on first use, so it can be built where nothing may be awaited (a service's constructor)."""

    def __init__(
        self,
        api: ApiClient | None = None,
        *,
        kubeconfig: Path | None = None,
        context: str | None = None,
        site: str = "kubernetes",
        default_image: str | None = None,
        stop_timeout_seconds: float = 30.0,
        poll_seconds: float = 0.2,
        watch: bool = False,
        watch_seconds: int = 300,
        log_dir: Path | None = None,
        consumer_quota: ConsumerQuota | None = None,
        objects: ObjectStore | None = None,
        stage_image: str | None = None,
        egress: RunEgress | None = None,
        scratch_size_limit: str = manifests.SCRATCH_SIZE_LIMIT,
        outputs_max_bytes: int = staging.OUTPUTS_MAX_BYTES,
        outputs_max_entries: int = staging.OUTPUTS_MAX_ENTRIES,
    ) -> None:
        """`egress`: where run pods may connect to (None: the cluster DNS only)."""
        self.name = "kubernetes"
        self.egress = egress if egress is not None else run_egress(None)
        self.scratch_size_limit = scratch_size_limit
        self.outputs_max_bytes = outputs_max_bytes
        self.outputs_max_entries = outputs_max_entries
        # With both, a run pod fetches its inputs and uploads its outputs itself, by presigned URLs.
        self.objects = objects
        self.stage_image = stage_image if objects is not None else None
        self.consumer_quota = consumer_quota or ConsumerQuota()
        self.site = site
        self.default_image = default_image
        self.stop_timeout_seconds = stop_timeout_seconds
        self.poll_seconds = poll_seconds
        self.log_dir = log_dir
        # With watch on, status is answered from list+watch caches of our Jobs and pods (see Informer).
        self.cluster = Cluster(api, kubeconfig=kubeconfig, context=context, watch=watch, watch_seconds=watch_seconds)
        self.namespaces = ConsumerNamespaces(self.cluster, self.egress, scratch_size_limit)

    @classmethod
    async def from_kubeconfig(cls, path: Path | None = None, **kwargs: Any) -> KubernetesJobBackend:
        backend = cls(kubeconfig=path, **kwargs)
        await backend.connect()
        return backend

    # The API clients and caches, for callers (tests, benchmarks) that look at the cluster through the backend.
    @property
    def core(self) -> CoreV1Api:
        return self.cluster.core

    @property
    def batch(self) -> BatchV1Api:
        return self.cluster.batch

    @property
    def jobs(self) -> Informer | None:
        return self.cluster.jobs

    @property
    def pods(self) -> Informer | None:
        return self.cluster.pods

    async def connect(self) -> None:
        await self.cluster.connect()

    async def close(self) -> None:
        await self.cluster.close()

    # --- the port

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        if owner is None:
            raise StartRefused("the Kubernetes backend needs the run's consumer and asset")
        await self.connect()
        image = spec.image or self.default_image
        if not image:
            raise StartRefused("the asset names no container image")
        namespace = manifests.namespace_name(owner.consumer_id)
        name = manifests.job_name(run_id, attempt)
        self.cluster.remember(run_id, namespace)
        handle = f"{namespace}/{name}"
        if (existing := await self.cluster.read_job(namespace, name)) is not None:
            await self._stage_plan(existing, run_id, spec, attempt, owner)
            return handle
        # The client takes plain manifests as well as its models; its annotations only name the models.
        body: Any = manifests.job(
            run_id,
            spec,
            parameters,
            attempt=attempt,
            owner=owner,
            image=image,
            stage_image=self.stage_image,
            scratch_size_limit=self.scratch_size_limit,
        )
        job, created = await jobs.create(self.cluster, self.namespaces, owner, self.consumer_quota, name, body)
        if job is not None:
            await self._stage_plan(job, run_id, spec, attempt, owner)
        if created and attempt > 1:
            await jobs.end_earlier_attempts(self.cluster, namespace, run_id, attempt)
        return handle

    async def _stage_plan(self, job: dict[str, Any], run_id: str, spec: RunSpec, attempt: int, owner: RunOwner) -> None:
        if self.objects is not None and self.stage_image is not None:
            await staging.write_plan(self.cluster, self.objects, job, run_id, spec, attempt, owner)

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        await self.connect()
        namespace = await self.cluster.namespace_of(run_id)
        if namespace is None:
            return WorkloadStatus(
                WorkloadPhase.MISSING, detail="the run has no Job on this cluster", failure="vanished"
            )
        return await jobs.status(self.cluster, namespace, run_id, attempt)

    async def stop(self, run_id: str) -> bool:
        """Delete every Job of the run (foreground: pods first) and wait, bounded, until no pod is left."""
        await self.connect()
        namespace = await self.cluster.namespace_of(run_id)
        if namespace is None:
            return True
        try:
            # Deleting the pods deletes their logs: keep them for the results handler first.
            await self._save_log(run_id, namespace)
        except (ApiException, OSError) as error:
            log.warning("log not saved before the stop", run_id=run_id, error=repr(error))
        return await jobs.delete_all(
            self.cluster, namespace, run_id, timeout_seconds=self.stop_timeout_seconds, poll_seconds=self.poll_seconds
        )

    async def artifacts(self, run_id: str) -> RunArtifacts:
        """The run's log, every attempt in order: read from its pods, or as saved before a stop deleted them."""
        await self.connect()
        namespace = await self.cluster.namespace_of(run_id)
        if namespace is None or self.log_dir is None:
            return RunArtifacts([], None)
        saved = await self._save_log(run_id, namespace)
        if saved is None and (earlier := logs.saved_log_path(self.log_dir, run_id)).exists():
            saved = earlier
        outputs: list[tuple[str, Path]] = []
        # The run's last attempt only: an earlier attempt's outputs are not what the run ended with.
        if self.objects is not None and (last := await jobs.last_attempt(self.cluster, namespace, run_id)) is not None:
            outputs = await staging.fetch_outputs(
                self.objects,
                run_id,
                last,
                staging.outputs_dir(self.log_dir, run_id),
                max_bytes=self.outputs_max_bytes,
                max_entries=self.outputs_max_entries,
            )
        return RunArtifacts(outputs, saved)

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        """The attempt's workload container log from `offset` on, streamed until the container ends."""
        await self.connect()
        namespace = await self.cluster.namespace_of(run_id)
        if namespace is None:
            return
        async for chunk in logs.follow(self.cluster, namespace, run_id, attempt, offset):
            yield chunk

    async def discard(self, run_id: str) -> None:
        """Delete the run's finished Jobs (their pods and stage Secrets with them), the saved log and the unpacked
        outputs: the results are in the object store, and a busy consumer's namespace must not fill with Jobs."""
        await self.connect()
        namespace = await self.cluster.namespace_of(run_id)
        if namespace is not None:
            await jobs.delete_finished(self.cluster, namespace, run_id)
        await self._remove_local(run_id)

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        """Delete the consumer's runs namespace (its Jobs, pods, quota and ServiceAccount with it) and the logs
        saved here; True once the namespace is gone."""
        await self.connect()
        namespace = manifests.namespace_name(consumer_id)
        await self.namespaces.delete(namespace)
        for run_id in run_ids:
            self.cluster.forget(run_id)
            await self._remove_local(run_id)
            if self.objects is not None:
                await staging.remove_staged(self.objects, run_id)
        return await self.namespaces.wait_gone(
            namespace, timeout_seconds=self.stop_timeout_seconds, poll_seconds=self.poll_seconds
        )

    # --- what this process keeps of a run

    async def _save_log(self, run_id: str, namespace: str) -> Path | None:
        if self.log_dir is None:
            return None
        return await logs.save(self.cluster, namespace, run_id, logs.saved_log_path(self.log_dir, run_id))

    async def _remove_local(self, run_id: str) -> None:
        if self.log_dir is not None:
            logs.saved_log_path(self.log_dir, run_id).unlink(missing_ok=True)
            await asyncio.to_thread(shutil.rmtree, staging.outputs_dir(self.log_dir, run_id), True)
