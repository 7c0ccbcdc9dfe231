"""Staging on Kubernetes: each attempt's pod fetches its inputs (an init container) and uploads a tar of its outputs
(a native sidecar, stopped by the kubelet after the workload) itself, by presigned URLs in a Secret owned by the
Job: the handlers never hold the data, the pod holds no credentials. Here: that Secret (the stage plan), and the
uploaded outputs unpacked for the results handler."""

from __future__ import annotations

import asyncio
import shutil
import tarfile
from pathlib import Path
from typing import Any, cast

from adapters.input_layout import inside
from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.connection import Cluster
from adapters.stager import stage_plan
from events.payloads.run import RunSpec
from ports.compute import RunOwner
from ports.objects import ObjectStore
from schemas.names import outputs_key, staging_prefix

# S3 signs for at most 7 days.
_LONGEST_SIGNATURE_SECONDS = 7 * 24 * 3600


async def write_plan(
    cluster: Cluster,
    objects: ObjectStore,
    job: dict[str, Any],
    run_id: str,
    spec: RunSpec,
    attempt: int,
    owner: RunOwner,
) -> None:
    """The attempt's Secret of presigned URLs, made once: the pod's stage steps wait for it to be mounted."""
    namespace = manifests.namespace_name(owner.consumer_id)
    # No read first: the handler may not read Secrets (it could read any in the cluster); a repeated start
    # signs again and the create answers 409, keeping the first plan.
    # Valid while the attempt may live: the Job's own deadline, at most S3's limit.
    valid = min(int(spec.pending_timeout_seconds + spec.timeout_seconds) + 3600, _LONGEST_SIGNATURE_SECONDS)
    outputs_url = await objects.presigned_url(
        "PUT", outputs_key(run_id, attempt), expires_seconds=valid, content_type="application/x-tar"
    )
    plan = await stage_plan(objects, spec.inputs, valid_seconds=valid, outputs_url=outputs_url)
    body: Any = manifests.stage_secret(run_id, attempt, owner, str(job["metadata"]["uid"]), plan.model_dump_json())
    await cluster.create_if_missing(cluster.core.create_namespaced_secret(namespace, body))


def outputs_dir(log_dir: Path, run_id: str) -> Path:
    return log_dir / f"{manifests.run_label(run_id)}-outputs"


async def fetch_outputs(objects: ObjectStore, run_id: str, attempt: int, root: Path) -> list[tuple[str, Path]]:
    """What the attempt's stage-out sidecar uploaded, unpacked under `root`. An attempt whose sidecar never
    finished (evicted, node lost) left no archive: no outputs."""
    key = outputs_key(run_id, attempt)
    if key not in {o.key for o in await objects.list(staging_prefix(run_id))}:
        return []
    archive = root.with_suffix(".tar")
    root.parent.mkdir(parents=True, exist_ok=True)
    await objects.get_file(key, archive)
    try:
        return await asyncio.to_thread(unpack, archive, root)
    finally:
        archive.unlink(missing_ok=True)


async def remove_staged(objects: ObjectStore, run_id: str) -> None:
    """Every archive the run's attempts uploaded: once its consumer is released nobody asks for them."""
    staged = [o.key for o in await objects.list(staging_prefix(run_id))]
    if staged:
        await objects.delete(staged)


def unpack(archive: Path, root: Path) -> list[tuple[str, Path]]:
    """Regular files of the archive under `root`, none outside it: it came from a pod the consumer's code ran in."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    base = root.resolve()
    found: list[tuple[str, Path]] = []
    with tarfile.open(archive, "r:") as tar:
        # One member at a time, none kept: TarFile.next() appends each to `tar.members`, so a tar of a million
        # empty directory headers from the pod would otherwise be held whole.
        while (member := tar.next()) is not None:
            cast(Any, tar).members.clear()
            if not member.isreg():
                continue
            target = inside(root, member.name)
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                continue
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            found.append((str(target.relative_to(base)), target))
    return sorted(found)
