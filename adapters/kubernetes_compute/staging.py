"""Staging on Kubernetes: each attempt's pod fetches its inputs (an init container) and uploads a tar of its outputs
(a native sidecar, stopped by the kubelet after the workload) itself, by presigned URLs in a Secret owned by the
Job: the handlers never hold the data, the pod holds no credentials. Here: that Secret (the stage plan), and the
uploaded outputs unpacked for the results handler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapters.kubernetes_compute import manifests
from adapters.kubernetes_compute.connection import Cluster
from adapters.staged_outputs import (
    LONGEST_SIGNATURE_SECONDS,
    OUTPUTS_MAX_BYTES,
    OUTPUTS_MAX_ENTRIES,
    OutputsTooLarge,
    fetch_outputs,
    remove_staged,
    unpack,
)
from adapters.stager import stage_plan
from events.payloads.run import RunSpec
from ports.compute import RunOwner
from ports.objects import ObjectStore
from schemas.names import outputs_key

__all__ = [
    "OUTPUTS_MAX_BYTES",
    "OUTPUTS_MAX_ENTRIES",
    "OutputsTooLarge",
    "fetch_outputs",
    "outputs_dir",
    "remove_staged",
    "unpack",
    "write_plan",
]


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
    valid = min(int(spec.pending_timeout_seconds + spec.timeout_seconds) + 3600, LONGEST_SIGNATURE_SECONDS)
    outputs_url = await objects.presigned_url(
        "PUT", outputs_key(run_id, attempt), expires_seconds=valid, content_type="application/x-tar"
    )
    plan = await stage_plan(objects, spec.inputs, valid_seconds=valid, outputs_url=outputs_url)
    body: Any = manifests.stage_secret(run_id, attempt, owner, str(job["metadata"]["uid"]), plan.model_dump_json())
    await cluster.create_if_missing(cluster.core.create_namespaced_secret(namespace, body))


def outputs_dir(log_dir: Path, run_id: str) -> Path:
    return log_dir / f"{manifests.run_label(run_id)}-outputs"
