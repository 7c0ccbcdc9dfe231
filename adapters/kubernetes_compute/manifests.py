"""The Kubernetes objects of a run: the consumer's namespace, a ServiceAccount without rights, the Job.

Pure functions from ids and the run's spec to manifests (plain dicts, as the API takes them), so the
names are the same in every replica and after every restart: a repeated start finds what the first made.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import PurePosixPath
from typing import Any

from adapters.input_layout import input_env
from adapters.kubernetes_compute.egress import RunEgress
from events.payloads.run import RunSpec, StagedInput
from ports.compute import RunOwner
from schemas.assets import memory_bytes, reserved_env_name
from schemas.sites import ConsumerQuota

GROUP = "gaiax-workflows.io"
CONSUMER_LABEL = f"{GROUP}/consumer"
RUN_LABEL = f"{GROUP}/run"
ASSET_LABEL = f"{GROUP}/asset"
ATTEMPT_LABEL = f"{GROUP}/attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gaiax-workflows"}
# Full ids go to annotations: DIDs, URNs and BPNs do not fit the label value syntax or its 63 characters.
RUN_ID_ANNOTATION = f"{GROUP}/run-id"
CONSUMER_ID_ANNOTATION = f"{GROUP}/consumer-id"
ASSET_ID_ANNOTATION = f"{GROUP}/asset-id"
ASSET_VERSION_ANNOTATION = f"{GROUP}/asset-version"

SERVICE_ACCOUNT = "gxwf-run"
CONTAINER = "workload"
OUTPUT_DIR = "/outputs"
INPUT_DIR = "/inputs"
STAGE_DIR = "/stage"
STAGE_PLAN = "plan.json"
# Time the stage-out sidecar has to upload the outputs after the workload ended.
STAGE_OUT_GRACE_SECONDS = 300
# The container's own /tmp, an emptyDir of the pod: writable although the root filesystem is not.
TMP_DIR = "/tmp"  # noqa: S108
# An arbitrary unprivileged uid: images built to run as root still start under runAsNonRoot.
RUN_AS = 65532
GPU_RESOURCE = "nvidia.com/gpu"
# Labels NVIDIA's GPU feature discovery puts on GPU nodes.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
# The Job's own deadline is only a backstop for when no watcher is running: the watcher ends a run at its
# pending and running limits (as timed_out, with the reason), and Kubernetes counts both phases together.
DEADLINE_SLACK_SECONDS = 60
# Each emptyDir of a run pod, unless the backend is given another: a pod filling its node's disk is evicted
# at this size instead of starving the node's other pods.
SCRATCH_SIZE_LIMIT = "2Gi"
# What a container that names no ephemeral storage is counted with against the namespace's quota.
EPHEMERAL_DEFAULT_REQUEST = "64Mi"


def short_hash(value: str, length: int = 16) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def namespace_name(consumer_id: str) -> str:
    return f"gxwf-c-{short_hash(consumer_id)}"


def run_label(run_id: str) -> str:
    return short_hash(run_id, 20)


def job_name(run_id: str, attempt: int) -> str:
    return f"run-{run_label(run_id)}-{attempt}"


def run_selector(run_id: str, attempt: int | None = None) -> str:
    selector = f"{RUN_LABEL}={run_label(run_id)}"
    return selector if attempt is None else f"{selector},{ATTEMPT_LABEL}={attempt}"


def namespace(owner: RunOwner) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace_name(owner.consumer_id),
            "labels": {
                **MANAGED_BY,
                CONSUMER_LABEL: short_hash(owner.consumer_id),
                # What the cluster's admission policy demands of consumer namespaces (admission-policy.yaml).
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
            "annotations": {CONSUMER_ID_ANNOTATION: owner.consumer_id},
        },
    }


def service_account(owner: RunOwner) -> dict[str, Any]:
    """The identity of run pods: bound to no Role, and its token is never mounted."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace_name(owner.consumer_id), "labels": MANAGED_BY},
        "automountServiceAccountToken": False,
    }


def guards(
    owner: RunOwner,
    quota: ConsumerQuota,
    egress: RunEgress | None = None,
    scratch_size_limit: str = SCRATCH_SIZE_LIMIT,
) -> list[dict[str, Any]]:
    """What fences the consumer's runs namespace in: no inbound traffic to run pods (they serve nothing), no
    outbound traffic but DNS and the object store (`egress`; None: none at all), and the site's consumer quota
    as a ResourceQuota, with container defaults so pods that name no resources are still admitted under it.
    The jobs dispatcher enforces the same quota first; this is the cluster's word."""
    ns = namespace_name(owner.consumer_id)
    meta = {"namespace": ns, "labels": MANAGED_BY}
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "runs-deny-ingress", **meta},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "runs-egress", **meta},
            # Run code is the consumer's: it may not reach the cluster API, the control plane's servers, the
            # node's metadata service or the internet, only what its stage steps need.
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [dict(rule) for rule in (egress.rules if egress else ())],
            },
        },
    ]
    hard: dict[str, str] = {}
    if quota.cpu is not None:
        hard["requests.cpu"] = hard["limits.cpu"] = f"{math.ceil(quota.cpu * 1000)}m"
    if quota.memory is not None:
        hard["requests.memory"] = hard["limits.memory"] = quota.memory
    if quota.gpu is not None:
        hard[f"requests.{GPU_RESOURCE}"] = str(quota.gpu)
    if quota.runs is not None:
        hard["pods"] = str(quota.runs)
    if quota.ephemeral_storage is not None:
        hard["requests.ephemeral-storage"] = hard["limits.ephemeral-storage"] = quota.ephemeral_storage
    if hard:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": "consumer-quota", **meta},
                "spec": {"hard": hard},
            }
        )
    if quota.cpu is not None or quota.memory is not None or quota.ephemeral_storage is not None:
        default: dict[str, str] = {}
        if quota.cpu is not None:
            default["cpu"] = f"{math.ceil(min(quota.cpu, 1.0) * 1000)}m"
        if quota.memory is not None:
            default["memory"] = f"{min(memory_bytes(quota.memory), 2**30) // 2**20}Mi"
        request = dict(default)
        if quota.ephemeral_storage is not None:
            # Every container is limited on the node's disk too; a pod's emptyDirs have their own sizeLimit.
            limit = min(memory_bytes(quota.ephemeral_storage), memory_bytes(scratch_size_limit))
            default["ephemeral-storage"] = f"{max(limit // 2**20, 1)}Mi"
            request["ephemeral-storage"] = EPHEMERAL_DEFAULT_REQUEST
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "LimitRange",
                "metadata": {"name": "consumer-defaults", **meta},
                "spec": {"limits": [{"type": "Container", "default": default, "defaultRequest": request}]},
            }
        )
    return objects


def _labels(run_id: str, owner: RunOwner, attempt: int) -> dict[str, str]:
    return {
        **MANAGED_BY,
        CONSUMER_LABEL: short_hash(owner.consumer_id),
        RUN_LABEL: run_label(run_id),
        ASSET_LABEL: short_hash(owner.asset_id),
        ATTEMPT_LABEL: str(attempt),
    }


def _annotations(run_id: str, owner: RunOwner) -> dict[str, str]:
    return {
        RUN_ID_ANNOTATION: run_id,
        CONSUMER_ID_ANNOTATION: owner.consumer_id,
        ASSET_ID_ANNOTATION: owner.asset_id,
        ASSET_VERSION_ANNOTATION: str(owner.asset_version),
    }


def _resources(spec: RunSpec) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if spec.cpu is not None:
        cpu = f"{math.ceil(spec.cpu * 1000)}m"
        requests["cpu"] = limits["cpu"] = cpu
    if spec.memory_mb is not None:
        requests["memory"] = limits["memory"] = f"{spec.memory_mb}Mi"
    if spec.gpu_count:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(spec.gpu_count)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _node_selector(spec: RunSpec) -> dict[str, str]:
    selector = dict(spec.node_selector)
    if spec.gpu_count:
        selector.setdefault(GPU_PRESENT_LABEL, "true")
        if spec.gpu_type:
            selector.setdefault(GPU_PRODUCT_LABEL, spec.gpu_type)
    return selector


def stage_secret_name(run_id: str, attempt: int) -> str:
    return f"{job_name(run_id, attempt)}-stage"


def stage_secret(run_id: str, attempt: int, owner: RunOwner, job_uid: str, plan_json: str) -> dict[str, Any]:
    """The attempt's stage plan (presigned URLs): owned by its Job, so it goes when the Job goes."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": stage_secret_name(run_id, attempt),
            "namespace": namespace_name(owner.consumer_id),
            "labels": _labels(run_id, owner, attempt),
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": job_name(run_id, attempt), "uid": job_uid}
            ],
        },
        "type": "Opaque",
        "stringData": {STAGE_PLAN: plan_json},
    }


def _stage_container(name: str, image: str, args: list[str], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "args": args,
        "volumeMounts": [{"name": "stage", "mountPath": STAGE_DIR, "readOnly": True}, *mounts],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }


def _staging(
    run_id: str, attempt: int, image: str, inputs: list[StagedInput], scratch: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Init containers and volumes: stage-in before the workload (when it has inputs), and stage-out as a native
    sidecar (restartPolicy Always, Kubernetes 1.29+) that the kubelet stops after the workload, when it uploads."""
    plan = f"{STAGE_DIR}/{STAGE_PLAN}"
    init: list[dict[str, Any]] = []
    if inputs:
        init.append(
            _stage_container(
                "stage-in",
                image,
                ["stage", "in", "--plan", plan, "--dest", INPUT_DIR, "--workdir", TMP_DIR],
                [{"name": "inputs", "mountPath": INPUT_DIR}, {"name": "tmp", "mountPath": TMP_DIR}],
            )
        )
    sidecar = _stage_container(
        "stage-out",
        image,
        ["stage", "out", "--plan", plan, "--src", OUTPUT_DIR],
        [
            {"name": "outputs", "mountPath": OUTPUT_DIR, "readOnly": True},
            {"name": "stage-scratch", "mountPath": TMP_DIR},
        ],
    )
    sidecar["restartPolicy"] = "Always"
    init.append(sidecar)
    volumes: list[dict[str, Any]] = [
        {"name": "stage", "secret": {"secretName": stage_secret_name(run_id, attempt), "defaultMode": 0o440}},
        {"name": "stage-scratch", "emptyDir": dict(scratch)},
    ]
    if inputs:
        volumes.append({"name": "inputs", "emptyDir": dict(scratch)})
    return init, volumes


def job(
    run_id: str,
    spec: RunSpec,
    parameters: dict[str, str],
    *,
    attempt: int,
    owner: RunOwner,
    image: str,
    stage_image: str | None = None,
    scratch_size_limit: str = SCRATCH_SIZE_LIMIT,
) -> dict[str, Any]:
    """`stage_image`: the gxwf image, for the stage-in and stage-out steps; None: no staging (no object store).
    `scratch_size_limit`: the sizeLimit of each of the pod's emptyDirs."""
    scratch = {"sizeLimit": scratch_size_limit}
    labels = _labels(run_id, owner, attempt)
    annotations = _annotations(run_id, owner)
    staged_inputs = stage_image is not None and bool(spec.inputs)
    env = {
        # Never a reserved name (PATH, LD_PRELOAD, GXWF_*...): catalogue and jobs handler refuse them already.
        **{k: v for k, v in {**spec.env, **parameters}.items() if not reserved_env_name(k)},
        "HOME": TMP_DIR,
        "GXWF_RUN_ID": run_id,
        "GXWF_ATTEMPT": str(attempt),
        "GXWF_OUTPUT_DIR": OUTPUT_DIR,
    }
    if staged_inputs:
        env |= input_env(PurePosixPath(INPUT_DIR), (item.name for item in spec.inputs))
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": list(spec.command),
        "env": [{"name": name, "value": value} for name, value in env.items()],
        "workingDir": TMP_DIR,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": spec.read_only_root_filesystem,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": TMP_DIR},
            {"name": "outputs", "mountPath": OUTPUT_DIR},
        ],
    }
    if staged_inputs:
        container["volumeMounts"].append({"name": "inputs", "mountPath": INPUT_DIR, "readOnly": True})
    if resources := _resources(spec):
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        # Run pods need no other service's address in their environment.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": dict(scratch)}, {"name": "outputs", "emptyDir": dict(scratch)}],
    }
    if stage_image is not None:
        init, volumes = _staging(run_id, attempt, stage_image, list(spec.inputs), scratch)
        pod_spec["initContainers"] = init
        pod_spec["volumes"] += volumes
        pod_spec["terminationGracePeriodSeconds"] = STAGE_OUT_GRACE_SECONDS
    if selector := _node_selector(spec):
        pod_spec["nodeSelector"] = selector
    if spec.gpu_count:
        # GPU nodes are commonly tainted so that only pods asking for a GPU land there.
        pod_spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    deadline = math.ceil(spec.pending_timeout_seconds + spec.timeout_seconds) + DEADLINE_SLACK_SECONDS
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(run_id, attempt),
            "namespace": namespace_name(owner.consumer_id),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            # Retries are the run's policy, decided by the watcher: each attempt is a Job of its own.
            "backoffLimit": 0,
            "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
        },
    }
