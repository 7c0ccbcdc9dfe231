"""The Kubernetes compute backend: each attempt of a run is a batch/v1 Job in its consumer's namespace.

Names are derived from the ids (`adapters.kubernetes_manifests`), so any replica, before or after a
restart, finds the Job a start made, and a repeated start creates nothing. Status is classified from the
Job and its pod (`adapters.kubernetes_status`), read from the API or, with `watch`, from list+watch caches
(`adapters.kubernetes_informer`). Stop deletes the run's Jobs with foreground propagation and only
reports success once their pods are gone.

Staging: with an object store and the gxwf image, each attempt's pod fetches its inputs (an init container)
and uploads a tar of its outputs (a native sidecar, stopped by the kubelet after the workload) itself, by
presigned URLs in a Secret owned by the Job: the handlers never hold the data, the pod holds no credentials.

Artifacts: the log, read from the run's pods (every attempt) into `log_dir`, and the last attempt's uploaded
outputs, unpacked there, for the results handler."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tarfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import structlog
from kubernetes_asyncio.client import (
    ApiClient,
    ApiException,
    BatchV1Api,
    Configuration,
    CoreV1Api,
    NetworkingV1Api,
)
from kubernetes_asyncio.config import load_incluster_config, load_kube_config

from adapters import kubernetes_manifests as manifests
from adapters.kubernetes_informer import Informer
from adapters.kubernetes_status import classify, completed
from events.payloads.run import RunSpec
from events.subjects import LOG_CHUNK_BYTES
from ports.compute import RunArtifacts, RunOwner, StartRefused, WorkloadPhase, WorkloadStatus
from ports.objects import ObjectStore
from schemas.names import attempt_separator, outputs_key, staging_prefix
from schemas.sites import ConsumerQuota
from schemas.staging import StageFile, StageInput, StagePlan

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
    ) -> None:
        self.name = "kubernetes"
        # With both, a run pod fetches its inputs and uploads its outputs itself, by presigned URLs.
        self.objects = objects
        self.stage_image = stage_image if objects is not None else None
        self.consumer_quota = consumer_quota or ConsumerQuota()
        self.site = site
        self.default_image = default_image
        self.stop_timeout_seconds = stop_timeout_seconds
        self.poll_seconds = poll_seconds
        self.log_dir = log_dir
        self._kubeconfig = kubeconfig
        self._context = context
        self._api: ApiClient | None = None
        self._owns_client = False
        if api is not None:
            self._attach(api)
        self._lock = asyncio.Lock()
        # Namespaces (and their ServiceAccount) known to exist, and where each run's Jobs are: both only save
        # calls, and both are found again from the cluster when this process is new.
        self._prepared: set[str] = set()
        self._namespaces: dict[str, str] = {}
        # With watch on, status is answered from list+watch caches of our Jobs and pods (see Informer).
        self._watch = watch
        self._watch_seconds = watch_seconds
        self.jobs: Informer | None = None
        self.pods: Informer | None = None

    @classmethod
    async def from_kubeconfig(cls, path: Path | None = None, **kwargs: Any) -> KubernetesJobBackend:
        backend = cls(kubeconfig=path, **kwargs)
        await backend.connect()
        return backend

    async def connect(self) -> None:
        if self._api is None:
            await self._load_config()
        if self._watch and self.jobs is None:
            selector = ",".join(f"{k}={v}" for k, v in manifests.MANAGED_BY.items())
            self.jobs = Informer(
                self.batch.list_job_for_all_namespaces, selector, self._plain, watch_seconds=self._watch_seconds
            )
            self.pods = Informer(
                self.core.list_pod_for_all_namespaces,
                selector,
                self._plain,
                watch_seconds=self._watch_seconds,
                index=_attempt_of,
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
        self._namespaces[run_id] = namespace
        handle = f"{namespace}/{name}"
        if (existing := await self._read_job(namespace, name)) is not None:
            await self._stage_plan(existing, run_id, spec, attempt, owner)
            return handle
        # The client takes plain manifests as well as its models; its annotations only name the models.
        body: Any = manifests.job(
            run_id, spec, parameters, attempt=attempt, owner=owner, image=image, stage_image=self.stage_image
        )
        for retry in (False, True):
            await self._prepare(owner)
            try:
                created = self._plain(await self.batch.create_namespaced_job(namespace, body))
            except ApiException as error:
                if error.status == 409:  # another replica (or an earlier try of this one) made it
                    if (found := await self._read_job(namespace, name)) is not None:
                        await self._stage_plan(found, run_id, spec, attempt, owner)
                    return handle
                if error.status == 404 and not retry:
                    # The namespace went away since it was prepared (a teardown): make it again, once.
                    self._prepared.discard(namespace)
                    continue
                if error.status in (400, 422):
                    # The API server refuses the Job itself (an invalid manifest): the same Job is refused again.
                    raise StartRefused(f"the cluster refused the run's Job: {_api_message(error)}") from error
                raise
            await self._stage_plan(created, run_id, spec, attempt, owner)
            if attempt > 1:
                await self._end_earlier_attempts(namespace, run_id, attempt)
            return handle
        raise AssertionError("unreachable")

    async def _stage_plan(self, job: dict[str, Any], run_id: str, spec: RunSpec, attempt: int, owner: RunOwner) -> None:
        """The attempt's Secret of presigned URLs, made once: the pod's stage steps wait for it to be mounted."""
        if self.objects is None or self.stage_image is None:
            return
        namespace = manifests.namespace_name(owner.consumer_id)
        # No read first: the handler may not read Secrets (it could read any in the cluster); a repeated start
        # signs again and the create answers 409, keeping the first plan.
        # Valid while the attempt may live: the Job's own deadline, at most S3's limit of 7 days.
        valid = min(int(spec.pending_timeout_seconds + spec.timeout_seconds) + 3600, 7 * 24 * 3600)
        inputs = []
        for item in spec.inputs:
            files = []
            for obj in await self.objects.list(item.prefix):
                url = await self.objects.presigned_url("GET", obj.key, expires_seconds=valid)
                relative = "" if item.kind == "file" else obj.key[len(item.prefix) :]
                files.append(StageFile(relative=relative, url=url, size=obj.size, sha256=obj.sha256))
            relative_path = item.path if item.path and not item.path.startswith("/") else None
            inputs.append(StageInput(name=item.name, kind=item.kind, path=relative_path, files=files))
        outputs_url = await self.objects.presigned_url(
            "PUT", outputs_key(run_id, attempt), expires_seconds=valid, content_type="application/x-tar"
        )
        plan = StagePlan(inputs=inputs, outputs_url=outputs_url)
        body: Any = manifests.stage_secret(run_id, attempt, owner, str(job["metadata"]["uid"]), plan.model_dump_json())
        await self._create_if_missing(self.core.create_namespaced_secret(namespace, body))

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        await self.connect()
        namespace = await self._namespace_of(run_id)
        if namespace is None:
            return WorkloadStatus(
                WorkloadPhase.MISSING, detail="the run has no Job on this cluster", failure="vanished"
            )
        name = manifests.job_name(run_id, attempt)
        cached = self._cached(namespace, name, run_id, attempt)
        if cached is not None:
            job, pods = cached
        else:
            found = await self._read_job(namespace, name)
            if found is None:
                return classify(None, [])
            job = found
            if completed(job):
                return classify(job, [])
            selector = manifests.run_selector(run_id, attempt)
            pods = [
                self._plain(pod)
                for pod in (await self.core.list_namespaced_pod(namespace, label_selector=selector)).items
            ]
        warnings: list[dict[str, Any]] = []
        if not pods:
            # Only a Job without pods needs its events: a quota or admission refusing the pod says so there.
            events = await self.core.list_namespaced_event(
                namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={job['metadata']['name']}"
            )
            warnings = sorted(
                (self._plain(e) for e in events.items if e.type == "Warning"),
                key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
            )
        return classify(job, pods, warnings)

    async def stop(self, run_id: str) -> bool:
        """Delete every Job of the run (foreground: pods first) and wait, bounded, until no pod is left."""
        await self.connect()
        namespace = await self._namespace_of(run_id)
        if namespace is None:
            return True
        selector = manifests.run_selector(run_id)
        try:
            # Deleting the pods deletes their logs: keep them for the results handler first.
            await self._save_log(run_id, namespace)
        except (ApiException, OSError) as error:
            log.warning("log not saved before the stop", run_id=run_id, error=repr(error))
        jobs = await self.batch.list_namespaced_job(namespace, label_selector=selector)
        for job in jobs.items:
            if job.metadata.deletion_timestamp is None:
                await self._delete_job(namespace, job.metadata.name)
        deadline = time.monotonic() + self.stop_timeout_seconds
        while True:
            pods = await self.core.list_namespaced_pod(namespace, label_selector=selector)
            if not pods.items:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.poll_seconds)

    async def artifacts(self, run_id: str) -> RunArtifacts:
        """The run's log, every attempt in order: read from its pods, or as saved before a stop deleted them."""
        await self.connect()
        namespace = await self._namespace_of(run_id)
        if namespace is None or self.log_dir is None:
            return RunArtifacts([], None)
        saved = await self._save_log(run_id, namespace)
        if saved is None and (earlier := self._log_path(run_id)).exists():
            saved = earlier
        return RunArtifacts(await self._staged_outputs(run_id), saved)

    async def _staged_outputs(self, run_id: str) -> list[tuple[str, Path]]:
        """The outputs the last attempt's stage-out sidecar uploaded, unpacked here for the results handler.
        An attempt whose sidecar never finished (evicted, node lost) left no archive: no outputs."""
        if self.objects is None or self.log_dir is None:
            return []
        keys = {o.key for o in await self.objects.list(staging_prefix(run_id))}
        # The run's last attempt only: an earlier attempt's outputs are not what the run ended with.
        last = await self._last_attempt(run_id)
        key = outputs_key(run_id, last) if last is not None else None
        if key is None or key not in keys:
            return []
        root = self._outputs_dir(run_id)
        archive = root.with_suffix(".tar")
        root.parent.mkdir(parents=True, exist_ok=True)
        await self.objects.get_file(key, archive)
        try:
            return await asyncio.to_thread(_unpack, archive, root)
        finally:
            archive.unlink(missing_ok=True)

    async def _last_attempt(self, run_id: str) -> int | None:
        namespace = await self._namespace_of(run_id)
        if namespace is None:
            return None
        jobs = await self.batch.list_namespaced_job(namespace, label_selector=manifests.run_selector(run_id))
        numbers = [
            int(number)
            for job in jobs.items
            if (number := (job.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "")).isdigit()
        ]
        return max(numbers) if numbers else None

    def _outputs_dir(self, run_id: str) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"{manifests.run_label(run_id)}-outputs"

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        """The attempt's workload container log from `offset` on, streamed (`follow`) until the container ends.
        Nothing while its pod is not there or the container waits to start: the caller asks again later."""
        await self.connect()
        namespace = await self._namespace_of(run_id)
        if namespace is None:
            return
        pods = await self.core.list_namespaced_pod(namespace, label_selector=manifests.run_selector(run_id, attempt))
        if not pods.items:
            return
        pod = max(pods.items, key=lambda item: str(item.metadata.creation_timestamp))
        try:
            response: Any = await self.core.read_namespaced_pod_log(
                pod.metadata.name, namespace, container=manifests.CONTAINER, follow=True, _preload_content=False
            )
        except ApiException as error:
            if error.status in (400, 404):  # waiting to start, or gone
                return
            raise
        skip = offset
        try:
            # The API has no byte offset: a restarted follow reads from the start and skips what was shipped.
            async for chunk in response.content.iter_chunked(LOG_CHUNK_BYTES):
                if skip >= len(chunk):
                    skip -= len(chunk)
                    continue
                yield bytes(chunk[skip:])
                skip = 0
        finally:
            response.release()

    async def discard(self, run_id: str) -> None:
        """Delete the run's finished Jobs (their pods and stage Secrets with them), the saved log and the unpacked
        outputs: the results are in the object store, and a busy consumer's namespace must not fill with Jobs."""
        await self.connect()
        namespace = await self._namespace_of(run_id)
        if namespace is not None:
            jobs = await self.batch.list_namespaced_job(namespace, label_selector=manifests.run_selector(run_id))
            for job in jobs.items:
                if job.metadata.deletion_timestamp is None:
                    try:
                        await self.batch.delete_namespaced_job(
                            job.metadata.name, namespace, propagation_policy="Background"
                        )
                    except ApiException as error:
                        if error.status != 404:
                            raise
        if self.log_dir is not None:
            self._log_path(run_id).unlink(missing_ok=True)
            await asyncio.to_thread(shutil.rmtree, self._outputs_dir(run_id), True)

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        """Delete the consumer's runs namespace (its Jobs, pods, quota and ServiceAccount with it) and the logs
        saved here; True once the namespace is gone."""
        await self.connect()
        namespace = manifests.namespace_name(consumer_id)
        self._prepared.discard(namespace)
        try:
            await self.core.delete_namespace(namespace, propagation_policy="Foreground")
        except ApiException as error:
            if error.status != 404:
                raise
        for run_id in run_ids:
            self._namespaces.pop(run_id, None)
            if self.log_dir is not None:
                self._log_path(run_id).unlink(missing_ok=True)
                await asyncio.to_thread(shutil.rmtree, self._outputs_dir(run_id), True)
            if self.objects is not None:
                staged = [o.key for o in await self.objects.list(staging_prefix(run_id))]
                if staged:
                    await self.objects.delete(staged)
        deadline = time.monotonic() + self.stop_timeout_seconds
        while True:
            try:
                await self.core.read_namespace(namespace)
            except ApiException as error:
                if error.status == 404:
                    return True
                raise
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(self.poll_seconds)

    # --- helpers

    async def _end_earlier_attempts(self, namespace: str, run_id: str, attempt: int) -> None:
        """Delete earlier attempts' Jobs that never finished: a pod on a lost node (phase Unknown) may still
        run there, and two attempts of a run must not both write its outputs once the node is back."""
        jobs = await self.batch.list_namespaced_job(namespace, label_selector=manifests.run_selector(run_id))
        for job in jobs.items:
            number = (job.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "")
            conditions = (job.status.conditions if job.status else None) or []
            ended = any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)
            if number.isdigit() and int(number) < attempt and not ended and job.metadata.deletion_timestamp is None:
                await self._delete_job(namespace, job.metadata.name)

    def _log_path(self, run_id: str) -> Path:
        assert self.log_dir is not None
        return self.log_dir / f"{manifests.run_label(run_id)}.txt"

    async def _save_log(self, run_id: str, namespace: str) -> Path | None:
        """Copy the log of every pod of the run into its file; None (and the file untouched) if no pod had one."""
        if self.log_dir is None:
            return None
        listed = await self.core.list_namespaced_pod(namespace, label_selector=manifests.run_selector(run_id))
        pods = sorted(
            listed.items,
            key=lambda pod: (
                int((pod.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "0")),
                str(pod.metadata.creation_timestamp),
            ),
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        path = self._log_path(run_id)
        partial = path.with_suffix(".partial")
        wrote = False
        with partial.open("wb") as out:
            for pod in pods:
                attempt = int((pod.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "0"))
                if attempt > 1:
                    out.write(attempt_separator(attempt).encode())
                wrote = await self._copy_log(namespace, pod.metadata.name, out) or wrote
        if not wrote:
            partial.unlink()
            return None
        partial.replace(path)
        return path

    async def _copy_log(self, namespace: str, pod: str, into: BinaryIO) -> bool:
        """Stream one pod's log into a file, never whole in memory; False if the pod has none to give."""
        try:
            # Unread, the answer is the HTTP response (aiohttp), whatever the client's annotation says.
            response: Any = await self.core.read_namespaced_pod_log(
                pod, namespace, container=manifests.CONTAINER, _preload_content=False
            )
        except ApiException as error:
            if error.status in (400, 404):  # never started, or gone meanwhile
                return False
            raise
        try:
            async for chunk in response.content.iter_chunked(1 << 16):
                into.write(chunk)
        finally:
            response.release()
        return True

    async def _delete_job(self, namespace: str, name: str) -> None:
        try:
            await self.batch.delete_namespaced_job(name, namespace, propagation_policy="Foreground")
        except ApiException as error:
            if error.status != 404:
                raise

    async def _prepare(self, owner: RunOwner) -> None:
        """The consumer's namespace and the run pods' ServiceAccount, created if missing."""
        namespace = manifests.namespace_name(owner.consumer_id)
        if namespace in self._prepared:
            return
        namespace_body: Any = manifests.namespace(owner)
        account_body: Any = manifests.service_account(owner)
        await self._create_if_missing(self.core.create_namespace(namespace_body))
        await self._create_if_missing(self.core.create_namespaced_service_account(namespace, account_body))
        for guard in manifests.guards(owner, self.consumer_quota):
            body: Any = guard
            match guard["kind"]:
                case "NetworkPolicy":
                    await self._create_if_missing(self.networking.create_namespaced_network_policy(namespace, body))
                case "ResourceQuota":
                    await self._create_if_missing(self.core.create_namespaced_resource_quota(namespace, body))
                case "LimitRange":
                    await self._create_if_missing(self.core.create_namespaced_limit_range(namespace, body))
        self._prepared.add(namespace)

    @staticmethod
    async def _create_if_missing(call: Any) -> None:
        try:
            await call
        except ApiException as error:
            if error.status != 409:
                raise

    async def _read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = await self.batch.read_namespaced_job(name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self._plain(job)

    def _synced(self) -> bool:
        return (
            self.jobs is not None and self.pods is not None and self.jobs.synced.is_set() and self.pods.synced.is_set()
        )

    def _cached(
        self, namespace: str, name: str, run_id: str, attempt: int
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The Job and its pods from the caches; None when not synced or the Job is not (yet) there, since
        a Job created a moment ago may not have reached the cache: the API decides whether it is gone."""
        if not self._synced() or self.jobs is None or self.pods is None:
            return None
        job = self.jobs.items.get((namespace, name))
        if job is None:
            return None
        pods = self.pods.indexed((namespace, manifests.run_label(run_id), str(attempt)))
        return job, pods

    async def _namespace_of(self, run_id: str) -> str | None:
        """Where the run's Jobs are: remembered from the start, else found by the run's label."""
        if (namespace := self._namespaces.get(run_id)) is not None:
            return namespace
        if self._synced() and self.jobs is not None:
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

    def _plain(self, obj: Any) -> dict[str, Any]:
        # The API's own field names (camelCase), as the status rules and the manifests are written.
        assert self._api is not None
        plain: dict[str, Any] = self._api.sanitize_for_serialization(obj)
        return plain


def _api_message(error: ApiException) -> str:
    """The Status message the API server sent (what is wrong with the object), else the HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return str(message or error.reason or error.status)[:500]


def _attempt_of(pod: dict[str, Any]) -> tuple[str, str, str]:
    """Which run attempt a pod belongs to: the key the pod cache is indexed by."""
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (
        str(metadata.get("namespace") or ""),
        str(labels.get(manifests.RUN_LABEL) or ""),
        str(labels.get(manifests.ATTEMPT_LABEL) or ""),
    )


def _unpack(archive: Path, root: Path) -> list[tuple[str, Path]]:
    """Regular files of the archive under `root`, none outside it: it came from a pod the consumer's code ran in."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    base = root.resolve()
    found: list[tuple[str, Path]] = []
    with tarfile.open(archive, "r:") as tar:
        for member in tar:
            if not member.isreg():
                continue
            target = (root / member.name).resolve()
            if not target.is_relative_to(base) or target == base:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                continue
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            found.append((str(target.relative_to(base)), target))
    return sorted(found)
