"""A run attempt's Job: created once whoever asks, its status classified from the Job and its pod, and deleted
with confirmation that no pod of it is left.

Names are derived from the ids (`manifests`), so any replica, before or after a restart, finds the Job a start
made, and a repeated start creates nothing. Status comes from the caches when they have the Job, else from the
API (`status` holds the rules)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kubernetes_asyncio.client import ApiException

from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.connection import Cluster, api_message
from adapters.kubernetes_compute.namespaces import ConsumerNamespaces
from adapters.kubernetes_compute.status import classify, completed
from ports.compute import RunOwner, StartRefused, WorkloadStatus
from schemas.sites import ConsumerQuota


async def create(
    cluster: Cluster,
    namespaces: ConsumerNamespaces,
    owner: RunOwner,
    quota: ConsumerQuota,
    name: str,
    body: Any,
) -> tuple[dict[str, Any] | None, bool]:
    """The Job, and whether this call made it (False: another replica, or an earlier try of this one, did; the
    Job is then None if it went again meanwhile). The consumer's namespace is prepared first."""
    namespace = manifests.namespace_name(owner.consumer_id)
    for retry in (False, True):
        await namespaces.prepare(owner, quota)
        try:
            return cluster.plain(await cluster.batch.create_namespaced_job(namespace, body)), True
        except ApiException as error:
            if error.status == 409:
                return await cluster.read_job(namespace, name), False
            if error.status == 404 and not retry:
                # The namespace went away since it was prepared (a teardown): make it again, once.
                namespaces.forget(namespace)
                continue
            if error.status in (400, 422):
                # The API server refuses the Job itself (an invalid manifest): the same Job is refused again.
                raise StartRefused(f"the cluster refused the run's Job: {api_message(error)}") from error
            raise
    raise AssertionError("unreachable")


async def end_earlier_attempts(cluster: Cluster, namespace: str, run_id: str, attempt: int) -> None:
    """Delete earlier attempts' Jobs that never finished: a pod on a lost node (phase Unknown) may still
    run there, and two attempts of a run must not both write its outputs once the node is back."""
    for job in await cluster.run_jobs(namespace, run_id):
        number = (job.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "")
        conditions = (job.status.conditions if job.status else None) or []
        ended = any(c.type in ("Complete", "Failed") and c.status == "True" for c in conditions)
        if number.isdigit() and int(number) < attempt and not ended and job.metadata.deletion_timestamp is None:
            await cluster.delete_job(namespace, job.metadata.name)


async def status(cluster: Cluster, namespace: str, run_id: str, attempt: int) -> WorkloadStatus:
    name = manifests.job_name(run_id, attempt)
    cached = cluster.cached(namespace, name, run_id, attempt)
    if cached is not None:
        job, pods = cached
    else:
        found = await cluster.read_job(namespace, name)
        if found is None:
            return classify(None, [])
        job = found
        if completed(job):
            return classify(job, [])
        selector = manifests.run_selector(run_id, attempt)
        pods = [
            cluster.plain(pod)
            for pod in (await cluster.core.list_namespaced_pod(namespace, label_selector=selector)).items
        ]
    warnings: list[dict[str, Any]] = []
    if not pods:
        # Only a Job without pods needs its events: a quota or admission refusing the pod says so there.
        events = await cluster.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind=Job,involvedObject.name={job['metadata']['name']}"
        )
        warnings = sorted(
            (cluster.plain(e) for e in events.items if e.type == "Warning"),
            key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""),
        )
    return classify(job, pods, warnings)


async def delete_all(
    cluster: Cluster, namespace: str, run_id: str, *, timeout_seconds: float, poll_seconds: float
) -> bool:
    """Delete every Job of the run (foreground: pods first) and wait, bounded, until no pod is left."""
    for job in await cluster.run_jobs(namespace, run_id):
        if job.metadata.deletion_timestamp is None:
            await cluster.delete_job(namespace, job.metadata.name)
    selector = manifests.run_selector(run_id)
    deadline = time.monotonic() + timeout_seconds
    while True:
        pods = await cluster.core.list_namespaced_pod(namespace, label_selector=selector)
        if not pods.items:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(poll_seconds)


async def delete_finished(cluster: Cluster, namespace: str, run_id: str) -> None:
    """Delete the run's Jobs without waiting (background: their pods and stage Secrets follow), once it ended."""
    for job in await cluster.run_jobs(namespace, run_id):
        if job.metadata.deletion_timestamp is None:
            await cluster.delete_job(namespace, job.metadata.name, propagation="Background")


async def last_attempt(cluster: Cluster, namespace: str, run_id: str) -> int | None:
    numbers = [
        int(number)
        for job in await cluster.run_jobs(namespace, run_id)
        if (number := (job.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "")).isdigit()
    ]
    return max(numbers) if numbers else None
