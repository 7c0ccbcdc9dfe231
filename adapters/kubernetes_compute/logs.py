"""A run's log on Kubernetes: followed live from its workload container, and saved from every attempt's pod into
a file for the results handler, so that it outlives the pods (deleting a pod deletes its log)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

from kubernetes_asyncio.client import ApiException

from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.connection import Cluster
from events.subjects import LOG_CHUNK_BYTES
from schemas.names import attempt_separator


def saved_log_path(log_dir: Path, run_id: str) -> Path:
    return log_dir / f"{manifests.run_label(run_id)}.txt"


async def follow(cluster: Cluster, namespace: str, run_id: str, attempt: int, offset: int) -> AsyncIterator[bytes]:
    """The attempt's workload container log from `offset` on, streamed (`follow`) until the container ends.
    Nothing while its pod is not there or the container waits to start: the caller asks again later."""
    core = cluster.core
    pods = await core.list_namespaced_pod(namespace, label_selector=manifests.run_selector(run_id, attempt))
    if not pods.items:
        return
    pod = max(pods.items, key=lambda item: str(item.metadata.creation_timestamp))
    try:
        response: Any = await core.read_namespaced_pod_log(
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


async def save(cluster: Cluster, namespace: str, run_id: str, path: Path) -> Path | None:
    """Copy the log of every pod of the run into `path`, attempts in order; None (and the file untouched) if no
    pod had one."""
    listed = await cluster.core.list_namespaced_pod(namespace, label_selector=manifests.run_selector(run_id))
    pods = sorted(
        listed.items,
        key=lambda pod: (
            int((pod.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "0")),
            str(pod.metadata.creation_timestamp),
        ),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    wrote = False
    with partial.open("wb") as out:
        for pod in pods:
            attempt = int((pod.metadata.labels or {}).get(manifests.ATTEMPT_LABEL, "0"))
            if attempt > 1:
                out.write(attempt_separator(attempt).encode())
            wrote = await _copy(cluster, namespace, pod.metadata.name, out) or wrote
    if not wrote:
        partial.unlink()
        return None
    partial.replace(path)
    return path


async def _copy(cluster: Cluster, namespace: str, pod: str, into: BinaryIO) -> bool:
    """Stream one pod's log into a file, never whole in memory; False if the pod has none to give."""
    try:
        # Unread, the answer is the HTTP response (aiohttp), whatever the client's annotation says.
        response: Any = await cluster.core.read_namespaced_pod_log(
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
