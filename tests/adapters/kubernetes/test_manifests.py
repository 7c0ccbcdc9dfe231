"""The objects a run becomes: valid for Kubernetes 1.30, named deterministically, locked down."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from adapters.kubernetes_compute import manifests as m
from events.payloads.run import StagedInput
from schemas.sites import ConsumerQuota
from tests.adapters.kubernetes.conftest import OWNER, spec


def _valid(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, "1.30.0", strict=True)


def _pod(job: dict[str, Any]) -> dict[str, Any]:
    return dict(job["spec"]["template"]["spec"])


def test_every_object_is_valid_for_kubernetes_1_30_strict() -> None:
    gpu = spec(cpu=2.5, memory_mb=4096, gpu_count=1, gpu_type="NVIDIA-A100", node_selector={"site": "hpc"})
    for obj in (
        m.namespace(OWNER),
        m.service_account(OWNER),
        m.job("run-1", spec(), {}, attempt=1, owner=OWNER, image="busybox:1.36"),
        m.job("run-1", gpu, {"SPEED": "3"}, attempt=2, owner=OWNER, image="carla:0.9"),
    ):
        _valid(obj)


def test_names_are_deterministic_short_and_per_attempt() -> None:
    long_id = "urn:uuid:" + "x" * 240
    assert m.job_name(long_id, 1) == m.job_name(long_id, 1) != m.job_name(long_id, 2)
    assert len(m.job_name(long_id, 20)) <= 63 and m.job_name("r", 3).endswith("-3")
    assert m.namespace_name("did:web:a") == m.namespace_name("did:web:a") != m.namespace_name("did:web:b")
    assert m.namespace_name("did:web:a").startswith("gxwf-c-")


def test_the_namespace_is_what_the_admission_policy_expects() -> None:
    labels = m.namespace(OWNER)["metadata"]["labels"]
    assert m.CONSUMER_LABEL in labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_the_pod_runs_without_rights_as_non_root_with_a_read_only_root() -> None:
    job = m.job("run-1", spec(env={"A": "1"}), {"P": "2"}, attempt=1, owner=OWNER, image="busybox:1.36")
    pod = _pod(job)
    [container] = pod["containers"]
    assert job["spec"]["backoffLimit"] == 0
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == m.SERVICE_ACCOUNT and pod["automountServiceAccountToken"] is False
    assert m.service_account(OWNER)["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    mounts = {v["mountPath"]: v["name"] for v in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts == {"/tmp": "tmp", m.OUTPUT_DIR: "outputs"} and all("emptyDir" in volumes[n] for n in mounts.values())
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (
        env["A"] == "1" and env["P"] == "2" and env["GXWF_RUN_ID"] == "run-1" and env["GXWF_OUTPUT_DIR"] == "/outputs"
    )
    writable = m.job("run-1", spec(read_only_root_filesystem=False), {}, attempt=1, owner=OWNER, image="x")
    assert _pod(writable)["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is False


def test_labels_name_consumer_run_asset_and_attempt_and_annotations_keep_the_ids() -> None:
    job = m.job("run/1", spec(), {}, attempt=3, owner=OWNER, image="busybox:1.36")
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        labels = meta["labels"]
        assert labels[m.RUN_LABEL] == m.run_label("run/1") and labels[m.ATTEMPT_LABEL] == "3"
        assert labels[m.CONSUMER_LABEL] == m.short_hash(OWNER.consumer_id)
        assert labels[m.ASSET_LABEL] == m.short_hash(OWNER.asset_id)
        assert meta["annotations"][m.RUN_ID_ANNOTATION] == "run/1"
        assert meta["annotations"][m.CONSUMER_ID_ANNOTATION] == OWNER.consumer_id


@pytest.mark.parametrize(
    ("fields", "resources", "selector"),
    [
        ({}, None, None),
        ({"cpu": 0.25, "memory_mb": 512}, {"cpu": "250m", "memory": "512Mi"}, None),
        (
            {"gpu_count": 2, "gpu_type": "NVIDIA-A100"},
            {"nvidia.com/gpu": "2"},
            {"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": "NVIDIA-A100"},
        ),
        ({"node_selector": {"site": "hpc"}}, None, {"site": "hpc"}),
    ],
)
def test_resources_and_node_selection_follow_the_spec(
    fields: dict[str, Any], resources: dict[str, str] | None, selector: dict[str, str] | None
) -> None:
    pod = _pod(m.job("r", spec(**fields), {}, attempt=1, owner=OWNER, image="x"))
    container = pod["containers"][0]
    if resources is None:
        assert "resources" not in container
    else:
        assert container["resources"] == {"requests": resources, "limits": resources}
    assert pod.get("nodeSelector") == selector
    assert ("tolerations" in pod) == bool(fields.get("gpu_count"))


def test_the_job_deadline_is_a_backstop_behind_both_time_limits() -> None:
    job = m.job("r", spec(timeout_seconds=100, pending_timeout_seconds=30), {}, attempt=1, owner=OWNER, image="x")
    assert job["spec"]["activeDeadlineSeconds"] == 130 + m.DEADLINE_SLACK_SECONDS


STAGED = [
    StagedInput(name="route", kind="file", input_id="in-1", prefix="inputs/c/in-1/", path="data/route.csv"),
    StagedInput(name="maps", kind="directory", input_id="in-2", prefix="inputs/c/in-2/"),
]


def test_a_staged_run_fetches_inputs_first_and_uploads_outputs_from_a_sidecar() -> None:
    job = m.job("run-s", spec(inputs=STAGED), {}, attempt=2, owner=OWNER, image="carla:0.9", stage_image="gxwf:0.1.0")
    _valid(job)
    pod = _pod(job)
    stage_in, stage_out = pod["initContainers"]
    assert stage_in["name"] == "stage-in" and "restartPolicy" not in stage_in, "runs to completion before the workload"
    assert stage_in["args"][:2] == ["stage", "in"] and stage_in["image"] == "gxwf:0.1.0"
    # A native sidecar: started before the workload, stopped by the kubelet after it, when it uploads.
    assert stage_out["name"] == "stage-out" and stage_out["restartPolicy"] == "Always"
    assert stage_out["args"][:2] == ["stage", "out"]
    for step in (stage_in, stage_out):
        assert step["securityContext"]["readOnlyRootFilesystem"] is True
        assert step["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "stage", "mountPath": m.STAGE_DIR, "readOnly": True} in step["volumeMounts"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["stage"]["secret"]["secretName"] == m.stage_secret_name("run-s", 2)
    [workload] = pod["containers"]
    assert {"name": "inputs", "mountPath": m.INPUT_DIR, "readOnly": True} in workload["volumeMounts"]
    outputs = [mount for mount in stage_out["volumeMounts"] if mount["name"] == "outputs"]
    assert outputs == [{"name": "outputs", "mountPath": m.OUTPUT_DIR, "readOnly": True}]
    env = {e["name"]: e["value"] for e in workload["env"]}
    assert env["GXWF_INPUT_DIR"] == "/inputs"
    assert (env["GXWF_INPUT_ROUTE"], env["GXWF_INPUT_MAPS"]) == ("/inputs/route", "/inputs/maps")
    assert pod["terminationGracePeriodSeconds"] >= 60, "time to upload after the workload ended"


def test_a_run_without_inputs_still_uploads_its_outputs() -> None:
    pod = _pod(m.job("run-o", spec(), {}, attempt=1, owner=OWNER, image="busybox:1.36", stage_image="gxwf:0.1.0"))
    assert [c["name"] for c in pod["initContainers"]] == ["stage-out"]
    assert "inputs" not in {v["name"] for v in pod["volumes"]}
    # Without an object store there is nothing to stage with: the pod is the workload alone.
    assert "initContainers" not in _pod(m.job("run-o", spec(), {}, attempt=1, owner=OWNER, image="busybox:1.36"))


def test_the_stage_secret_is_owned_by_its_job_and_valid() -> None:
    secret = m.stage_secret("run-s", 2, OWNER, "0b6c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3", '{"inputs": []}')
    _valid(secret)
    (owner,) = secret["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"]) == ("Job", m.job_name("run-s", 2)), "deleted with the Job"
    assert secret["metadata"]["namespace"] == m.namespace_name(OWNER.consumer_id)


def test_the_guards_of_a_runs_namespace_are_valid() -> None:
    for quota in (ConsumerQuota(), ConsumerQuota(runs=2, cpu=1.5, memory="3Gi", gpu=1)):
        for obj in m.guards(OWNER, quota):
            _valid(obj)


def test_the_stage_steps_command_lines_parse_with_the_gxwf_cli() -> None:
    """The gxwf image's entrypoint is `gxwf`: each stage container's args must be a valid command line."""
    import typer

    from gxwf.cli import app

    root = typer.main.get_command(app)
    parent = root.make_context("gxwf", [], resilient_parsing=True)
    pod = _pod(m.job("run-s", spec(inputs=STAGED), {}, attempt=1, owner=OWNER, image="x:1", stage_image="gxwf:1"))
    for step in pod["initContainers"]:
        group, name, *options = step["args"]
        command = root.commands[group].commands[name]  # type: ignore[attr-defined]
        command.make_context(f"gxwf {group} {name}", list(options), parent=parent)
