"""The Slurm backend's rules that need no cluster: the site configuration, the request bodies per API version,
what a job's state and wait status mean for the run, the batch script's container command lines, and where
slurmrestd's tokens come from."""

from __future__ import annotations

import shlex
import time
from pathlib import Path, PurePosixPath
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from adapters.slurm_compute import script
from adapters.slurm_compute.api import JobRequest, SlurmApi, SlurmJob
from adapters.slurm_compute.backend import _refused
from adapters.slurm_compute.rest import SlurmError
from adapters.slurm_compute.status import classify, decode_wait_status
from adapters.slurm_compute.tokens import EnvTokens, FileTokens, MintedTokens, TokenUnavailable
from events.payloads.run import RunSpec, StagedInput
from handlers.jobs.watch import _judge_running
from ports.compute import StartRefused, WorkloadPhase, WorkloadStatus
from schemas.assets import Resources, WorkflowAssetDefinition
from schemas.run import RunDocument, RunState
from schemas.sites import Site, SitesConfig, place

SLURM = {
    "url": "http://127.0.0.1:6820",
    "user": "gxwf",
    "jwt_key_file": "/etc/slurm/jwt.key",
    "job_root": "/scratch/gxwf",
}


def _site(name: str, gpu: int = 0, **slurm: Any) -> Site:
    return Site.model_validate(
        {
            "name": name,
            "backend": "slurm",
            "slurm": {**SLURM, **slurm},
            "capabilities": {"cpu": 16, "memory": "64Gi", "gpu": gpu},
        }
    )


# --- the site configuration


def test_a_slurm_site_reads_with_its_defaults() -> None:
    site = _site("hpc", gpu=2)
    assert site.slurm is not None
    assert site.slurm.api_version == "v0.0.38"
    assert site.slurm.gpu_gres == "gpu"
    assert site.slurm.container_runtime == "none"
    assert site.slurm.partition is None and site.slurm.gxwf_command is None


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"token_file": "/run/token"}, "exactly one token source"),
        ({"jwt_key_file": None}, "exactly one token source"),
        ({"job_root": "relative/dir"}, "absolute path"),
        ({"container_runtime": "docker"}, "container_runtime"),
        ({"api_version": "v0.0.37"}, "api_version"),
        ({"url": "slurm:6820"}, "url"),
    ],
)
def test_a_wrong_slurm_section_names_the_field(change: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as error:
        _site("hpc", **change)
    assert complaint in str(error.value)


def test_backend_slurm_needs_its_section() -> None:
    with pytest.raises(ValidationError, match="needs a `slurm:` section"):
        Site.model_validate({"name": "hpc", "backend": "slurm", "capabilities": {"cpu": 4, "memory": "8Gi"}})


def test_gpu_assets_go_to_the_slurm_site_with_gpus_and_cpu_assets_elsewhere() -> None:
    cloud = Site.model_validate({"name": "cloud", "backend": "local", "capabilities": {"cpu": 16, "memory": "64Gi"}})
    sites = SitesConfig(sites=[_site("hpc", gpu=2), cloud]).sites
    assert place(Resources(gpu=1), [], sites).name == "hpc"
    assert place(Resources(), [], sites).name == "cloud"


# --- request bodies


def _request(**changes: object) -> JobRequest:
    fields: dict[str, object] = {
        "name": "gxwf-abc-1",
        "comment": "gxwf run r-1 attempt 1",
        "script": "#!/bin/bash\ntrue\n",
        "working_directory": "/scratch/r/1/work",
        "standard_output": "/scratch/r/1/output.log",
        "environment": {"PATH": "/usr/bin:/bin", "GXWF_RUN_ID": "r-1"},
        "cpus": 2,
        "memory_mb": 512,
        "time_limit_minutes": 5,
        "partition": "debug",
        "gres": "gpu:1",
    }
    return JobRequest(**{**fields, **changes})  # type: ignore[arg-type]


def test_v0_0_38_takes_an_environment_object_and_plain_numbers() -> None:
    body = SlurmApi("v0.0.38").submit_body(_request())
    job = body["job"]
    assert body["script"].startswith("#!/bin/bash")
    assert job["environment"] == {"PATH": "/usr/bin:/bin", "GXWF_RUN_ID": "r-1"}
    assert job["time_limit"] == 5 and job["memory_per_node"] == 512 and job["cpus_per_task"] == 2
    assert job["gres"] == "gpu:1" and job["nodes"] == [1, 1]
    assert job["standard_output"] == job["standard_error"] == "/scratch/r/1/output.log"
    assert "account" not in job and "qos" not in job


def test_v0_0_40_takes_k_v_strings_and_number_objects() -> None:
    job = SlurmApi("v0.0.40").submit_body(_request(account="proj1"))["job"]
    assert job["environment"] == ["PATH=/usr/bin:/bin", "GXWF_RUN_ID=r-1"]
    assert job["time_limit"] == {"set": True, "infinite": False, "number": 5}
    assert job["tres_per_node"] == "gres/gpu/1"
    assert job["account"] == "proj1"
    assert SlurmApi("v0.0.40").submit_path() == "/slurm/v0.0.40/job/submit"


def test_v0_0_40_job_answers_read_like_v0_0_38_ones() -> None:
    answer = {
        "jobs": [
            {
                "job_id": 7,
                "name": "n",
                "job_state": ["FAILED"],
                "exit_code": {"status": ["EXIT"], "return_code": {"set": True, "number": 3}},
            }
        ]
    }
    (job,) = SlurmApi("v0.0.40").jobs(answer)
    assert job.state == "FAILED" and job.wait_status == 768


# --- job states


def _job(state: str, wait_status: int | None = 0, reason: str = "None") -> SlurmJob:
    return SlurmJob(7, "gxwf-x-1", "gxwf run r attempt 1", state, wait_status, reason, "/x/output.log")


def test_wait_statuses_decode_to_exit_codes_and_signals() -> None:
    assert decode_wait_status(768) == (3, None)
    assert decode_wait_status(0) == (0, None)
    assert decode_wait_status(15) == (143, 15)
    assert decode_wait_status(9) == (137, 9)


def test_pending_is_waiting_so_the_pending_limit_applies() -> None:
    status = classify(_job("PENDING", None, "Resources"))
    assert status.phase is WorkloadPhase.RUNNING and status.waiting
    assert status.detail is not None and "Resources" in status.detail
    assert not classify(_job("RUNNING")).waiting


@pytest.mark.parametrize(
    ("state", "wait_status", "code", "failure"),
    [
        ("COMPLETED", 0, 0, None),
        ("FAILED", 768, 3, "exit_code"),
        ("FAILED", 9, 137, "exit_code"),
        ("CANCELLED", 15, 143, "vanished"),
        ("OUT_OF_MEMORY", 9, 137, "oom_killed"),
        ("NODE_FAIL", 0, 0, "node_lost"),
        ("PREEMPTED", 15, 143, "evicted"),
        ("FAILED", 0, 0, "vanished"),
    ],
)
def test_ended_jobs_map_to_exit_codes_and_failure_kinds(
    state: str, wait_status: int, code: int, failure: str | None
) -> None:
    status = classify(_job(state, wait_status))
    assert status.phase is WorkloadPhase.EXITED
    assert (status.exit_code, status.failure) == (code, failure)
    assert not status.timed_out


def test_slurm_timeout_ends_the_run_timed_out() -> None:
    status = classify(_job("TIMEOUT", 15))
    assert status.phase is WorkloadPhase.EXITED and status.timed_out
    run = RunDocument.model_validate(
        {
            "_id": "r",
            "consumer_id": "c",
            "asset_id": "a",
            "state": RunState.RUNNING,
            "spec": RunSpec(command=["sleep", "600"], timeout_seconds=60).model_dump(mode="json"),
        }
    )
    verdict = _judge_running(run, status, elapsed=61.0)
    assert type(verdict).__name__ == "RunTimedOut"
    assert verdict.limit_seconds == 60  # type: ignore[union-attr]
    assert _judge_running(run, WorkloadStatus(WorkloadPhase.EXITED, 143, failure="exit_code"), 61.0) is not None


def test_refused_submits_are_told_from_ones_worth_retrying() -> None:
    assert _refused(SlurmError("s", 500, [{"error_code": 2000, "error": "Invalid partition name specified"}]))
    assert _refused(SlurmError("s", 500, [{"error_code": 2014, "error": "Requested node configuration"}]))
    assert _refused(SlurmError("s", 400, [{"error_code": 9001, "error": "Failure during parsing"}]))
    assert not _refused(SlurmError("s", 500, [{"error_number": 1001, "error": "Communication connection failure"}]))
    assert not _refused(SlurmError("s", 502, []))


# --- the batch script and containers

ATTEMPT = PurePosixPath("/scratch/gxwf/abc/1")


def test_a_bare_command_runs_as_it_is() -> None:
    spec = RunSpec(command=["python3", "drive.py", "--town", "Town 01"])
    text = script.batch_script("r-1", 1, spec, ATTEMPT, runtime="apptainer", gxwf=["gxwf"], stage_out=True)
    assert "python3 drive.py --town 'Town 01' </dev/null" in text
    assert "apptainer" not in text
    assert '! gxwf stage out --plan "$A/plan.json" --src "$A/outputs" --now' in text
    assert "stage in" not in text, "no inputs, no stage-in step"


def test_apptainer_runs_the_docker_image_contained_with_the_attempt_bound() -> None:
    inputs = [StagedInput(name="route", kind="file", input_id="i", prefix="inputs/c/i/")]
    spec = RunSpec(image="ghcr.io/carla/standin:1.0", command=["drive", "--fast"], inputs=inputs)
    text = script.batch_script("r-1", 1, spec, ATTEMPT, runtime="apptainer", gxwf=["gxwf"], stage_out=True)
    line = next(line for line in text.splitlines() if line.startswith("apptainer"))
    assert shlex.split(line)[:-1] == [
        "apptainer",
        "exec",
        "--containall",
        "--no-home",
        "--bind",
        "/scratch/gxwf/abc/1/work:/work,/scratch/gxwf/abc/1/outputs:/outputs,/scratch/gxwf/abc/1/inputs:/inputs:ro",
        "--pwd",
        "/work",
        "docker://ghcr.io/carla/standin:1.0",
        "drive",
        "--fast",
    ]
    assert 'gxwf stage in --plan "$A/plan.json" --dest "$A/inputs" --workdir "$A/work"' in text
    env = script.environment("r-1", 1, spec, {"SPEED": "3"}, ATTEMPT, path="/usr/bin", container="apptainer")
    # Only APPTAINERENV_* crosses --containall; inside, the paths are the container's.
    assert env["APPTAINERENV_SPEED"] == "3"
    assert env["APPTAINERENV_GXWF_OUTPUT_DIR"] == "/outputs"
    assert env["APPTAINERENV_GXWF_INPUT_ROUTE"] == "/inputs/route"


def test_enroot_imports_creates_starts_and_removes_the_container() -> None:
    spec = RunSpec(image="ghcr.io/carla/standin:1.0", command=["drive"])
    text = script.batch_script(
        "r-1", 2, spec, ATTEMPT, runtime="enroot", gxwf=["gxwf"], stage_out=False, env_names=["GXWF_RUN_ID"]
    )
    name = script.job_name("r-1", 2)
    assert "enroot import --output /scratch/gxwf/abc/1/image.sqsh 'docker://ghcr.io#carla/standin:1.0'" in text
    assert f"enroot create --force --name {name} /scratch/gxwf/abc/1/image.sqsh" in text
    start = next(line for line in text.splitlines() if line.startswith("enroot start"))
    assert "--mount /scratch/gxwf/abc/1/outputs:/outputs" in start and "--env GXWF_RUN_ID" in start
    assert f"enroot remove --force {name}" in text
    assert script.enroot_uri("ubuntu:22.04") == "docker://ubuntu:22.04"


def test_an_image_without_a_bare_command_is_refused_where_there_is_no_container_runtime() -> None:
    spec = RunSpec(image="carla:0.9", command=["drive"])
    with pytest.raises(StartRefused, match="bare_command"):
        script.workload_command(spec, "none")
    bare = RunSpec(image="carla:0.9", command=["drive"], bare_command=["/opt/carla/drive"])
    assert script.workload_command(bare, "none") == (["/opt/carla/drive"], False)
    assert script.workload_command(bare, "apptainer") == (["drive"], True)


def test_bare_command_leaves_the_digest_of_definitions_without_it() -> None:
    plain = WorkflowAssetDefinition(id="a", title="A", command=["run"])
    assert "bare_command" not in plain.model_dump_json(exclude_none=True)
    assert plain.digest() != WorkflowAssetDefinition(id="a", title="A", command=["run"], bare_command=["x"]).digest()


# --- tokens


async def test_minted_tokens_carry_the_claims_slurm_checks_and_are_renewed(tmp_path: Path) -> None:
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 32)
    tokens = MintedTokens(key, "gxwf", lifespan_seconds=90)
    token = await tokens.token()
    claims = jwt.decode(token, b"k" * 32, algorithms=["HS256"])
    assert claims["sun"] == "gxwf" and claims["exp"] - claims["iat"] == 90
    assert await tokens.token() == token, "reused while fresh"
    tokens._renew_at = time.time() - 1
    key.write_bytes(b"r" * 32)  # rotated
    renewed = await tokens.token()
    assert jwt.decode(renewed, b"r" * 32, algorithms=["HS256"])["sun"] == "gxwf"


async def test_a_token_file_is_read_again_before_expiry_and_when_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    soon = jwt.encode({"sun": "u", "exp": int(time.time()) + 10}, "x" * 32, algorithm="HS256")
    later = jwt.encode({"sun": "u", "exp": int(time.time()) + 3600}, "x" * 32, algorithm="HS256")
    path.write_text(f"SLURM_JWT={soon}\n")
    tokens = FileTokens(path)
    assert await tokens.token() == soon
    path.write_text(later)
    assert await tokens.token() == later, "within the margin of its exp: read again"
    path.write_text(soon)
    assert await tokens.token() == later, "a fresh token is kept"
    tokens.rejected(later)
    assert await tokens.token() == soon


async def test_a_missing_token_says_where_it_was_looked_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GXWF_TEST_SLURM_JWT", raising=False)
    with pytest.raises(TokenUnavailable, match="GXWF_TEST_SLURM_JWT"):
        await EnvTokens("GXWF_TEST_SLURM_JWT").token()
    with pytest.raises(TokenUnavailable, match="nothing-here"):
        await FileTokens(tmp_path / "nothing-here").token()


def test_parameters_cannot_steer_slurm_or_the_container_runtime() -> None:
    spec = RunSpec(image="carla:0.9", command=["drive"], env={"TOWN": "Town01"})
    parameters = {"APPTAINER_BIND": "/:/host", "SLURM_JOB_ID": "1", "ENROOT_MOUNT_HOME": "y", "SPEED": "3"}
    env = script.environment("r-1", 1, spec, parameters, ATTEMPT, path="/usr/bin", container="apptainer")
    assert env["SPEED"] == "3" and env["TOWN"] == "Town01"
    assert not {"APPTAINER_BIND", "SLURM_JOB_ID", "ENROOT_MOUNT_HOME", "APPTAINERENV_APPTAINER_BIND"} & set(env)
