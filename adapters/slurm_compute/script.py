"""A run attempt's batch script and what it runs: the workload bare, in Apptainer, or in enroot.

Each attempt has its own directory under the site's job root (shared by the handlers and the nodes):

    <job_root>/<run label>/<attempt>/
        plan.json    presigned URLs of the inputs and of the outputs archive (mode 0600; no S3 credentials)
        inputs/      the staged inputs          (/inputs in a container)
        work/        the working directory      (/work), with `outputs` linked to ../outputs
        outputs/     what the run publishes     (/outputs)
        output.log   the job's stdout and stderr: the attempt's log
        stage.log    what the stage steps said
        exit_code    the workload's exit status, written last

The script stages the inputs in (`gxwf stage in`), runs the workload, uploads a tar of the outputs
(`gxwf stage out --now`) and records the exit status, then exits with it: the job's exit code is the workload's.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Literal

from adapters.input_layout import input_env
from events.payloads.run import RunSpec
from ports.compute import StartRefused
from schemas.assets import reserved_env_name

ContainerRuntime = Literal["apptainer", "enroot", "none"]

LOG_NAME = "output.log"
EXIT_CODE_NAME = "exit_code"
JOB_ID_NAME = "job_id"
PLAN_NAME = "plan.json"
# Inside a container: where the attempt's directories are bound.
CONTAINER_WORK = PurePosixPath("/work")
CONTAINER_OUTPUTS = PurePosixPath("/outputs")
CONTAINER_INPUTS = PurePosixPath("/inputs")


def run_label(run_id: str) -> str:
    return hashlib.sha256(run_id.encode()).hexdigest()[:20]


def job_name(run_id: str, attempt: int) -> str:
    return f"gxwf-{run_label(run_id)}-{attempt}"


def job_comment(run_id: str, attempt: int) -> str:
    """What finds the job again: its run and attempt, in words an operator reading squeue understands."""
    return f"gxwf run {run_id} attempt {attempt}"


def workload_command(spec: RunSpec, runtime: ContainerRuntime) -> tuple[list[str], bool]:
    """The command that runs the workload (argv) and whether it runs in a container; StartRefused when the site
    cannot run this asset version."""
    if spec.image is None:
        return list(spec.command), False
    if runtime == "none":
        if spec.bare_command is None:
            raise StartRefused(
                f"the asset runs in the container image {spec.image} and this Slurm site has no container "
                "runtime (container_runtime: none); the asset version would need a bare_command to run here"
            )
        return list(spec.bare_command), False
    return list(spec.command), True


def apptainer_argv(image: str, attempt_dir: PurePosixPath, command: Sequence[str], *, inputs: bool) -> list[str]:
    """`apptainer exec` of a Docker/OCI image: nothing of the host but the attempt's directories (--containall:
    own /tmp, /home and environment, which only APPTAINERENV_* variables reach), working in /work."""
    binds = [f"{attempt_dir / 'work'}:{CONTAINER_WORK}", f"{attempt_dir / 'outputs'}:{CONTAINER_OUTPUTS}"]
    if inputs:
        binds.append(f"{attempt_dir / 'inputs'}:{CONTAINER_INPUTS}:ro")
    return [
        "apptainer",
        "exec",
        "--containall",
        "--no-home",
        "--bind",
        ",".join(binds),
        "--pwd",
        str(CONTAINER_WORK),
        f"docker://{image}",
        *command,
    ]


def enroot_uri(image: str) -> str:
    """enroot names a registry with '#': ghcr.io/org/app:1 -> docker://ghcr.io#org/app:1."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return f"docker://{first}#{rest}"
    return f"docker://{image}"


def enroot_lines(
    image: str,
    container: str,
    attempt_dir: PurePosixPath,
    command: Sequence[str],
    env_names: Sequence[str],
    *,
    inputs: bool,
) -> list[str]:
    """import (a squashfs of the image in the attempt directory), create, start with the attempt's directories
    mounted and the run's variables passed, remove: without pyxis, which not every site has."""
    image_file = attempt_dir / "image.sqsh"
    mounts = [f"{attempt_dir / 'work'}:{CONTAINER_WORK}", f"{attempt_dir / 'outputs'}:{CONTAINER_OUTPUTS}"]
    if inputs:
        mounts.append(f"{attempt_dir / 'inputs'}:{CONTAINER_INPUTS}")
    start = ["enroot", "start", "--rw"]
    for mount in mounts:
        start += ["--mount", mount]
    for name in env_names:
        start += ["--env", name]
    # enroot has no working-directory option: a shell in the container changes to /work first.
    start += [container, "sh", "-c", f'cd {CONTAINER_WORK} && exec "$@"', "gxwf-run", *command]
    return [
        shlex.join(["enroot", "import", "--output", str(image_file), enroot_uri(image)]) + ' >>"$A/stage.log" 2>&1',
        shlex.join(["enroot", "create", "--force", "--name", container, str(image_file)]) + ' >>"$A/stage.log" 2>&1',
        shlex.join(start) + " </dev/null",
        "rc=$?",
        shlex.join(["enroot", "remove", "--force", container]) + ' >>"$A/stage.log" 2>&1',
    ]


def environment(
    run_id: str,
    attempt: int,
    spec: RunSpec,
    parameters: dict[str, str],
    attempt_dir: PurePosixPath,
    *,
    path: str,
    container: ContainerRuntime | None,
) -> dict[str, str]:
    """The job's environment: the asset's variables and the run's parameters (never a reserved name), the run's
    own, and PATH. In an Apptainer container only APPTAINERENV_* variables arrive (without the prefix)."""
    outputs = CONTAINER_OUTPUTS if container else attempt_dir / "outputs"
    inputs_root = CONTAINER_INPUTS if container else attempt_dir / "inputs"
    workload = {
        **{k: v for k, v in {**spec.env, **parameters}.items() if not reserved_env_name(k)},
        "GXWF_RUN_ID": run_id,
        "GXWF_ATTEMPT": str(attempt),
        "GXWF_OUTPUT_DIR": str(outputs),
        **(input_env(inputs_root, (i.name for i in spec.inputs)) if spec.inputs else {}),
    }
    env = {"PATH": path, "HOME": str(attempt_dir / "work"), **workload}
    if container == "apptainer":
        env |= {f"APPTAINERENV_{k}": v for k, v in workload.items()}
    return env


def batch_script(
    run_id: str,
    attempt: int,
    spec: RunSpec,
    attempt_dir: PurePosixPath,
    *,
    runtime: ContainerRuntime,
    gxwf: Sequence[str],
    stage_out: bool,
    env_names: Sequence[str] = (),
) -> str:
    command, contained = workload_command(spec, runtime)
    inputs = bool(spec.inputs)
    stage = shlex.join(list(gxwf))
    lines = [
        "#!/bin/bash",
        f"# gxwf run {shlex.quote(run_id)} attempt {attempt}",
        f"A={shlex.quote(str(attempt_dir))}",
        'cd "$A/work" || exit 1',
        "finish() {",
        '  printf "%s" "$1" >"$A/exit_code.tmp" && mv "$A/exit_code.tmp" "$A/exit_code"',
        '  exit "$1"',
        "}",
    ]
    if inputs:
        lines += [
            f'if ! {stage} stage in --plan "$A/plan.json" --dest "$A/inputs" --workdir "$A/work" >>"$A/stage.log" 2>&1',
            "then",
            '  echo "gxwf: staging the inputs failed:"; tail -n 5 "$A/stage.log"',
            "  finish 1",
            "fi",
        ]
    if not contained:
        lines += [shlex.join(command) + " </dev/null", "rc=$?"]
    elif runtime == "apptainer":
        assert spec.image is not None
        lines += [shlex.join(apptainer_argv(spec.image, attempt_dir, command, inputs=inputs)) + " </dev/null", "rc=$?"]
    else:
        assert spec.image is not None
        lines += enroot_lines(spec.image, job_name(run_id, attempt), attempt_dir, command, env_names, inputs=inputs)
    if stage_out:
        # Nothing written, nothing to upload (and no interpreter to start): the run then has no outputs.
        lines += [
            'if [ -n "$(ls -A "$A/outputs")" ] &&',
            f'  ! {stage} stage out --plan "$A/plan.json" --src "$A/outputs" --now >>"$A/stage.log" 2>&1',
            "then",
            '  echo "gxwf: uploading the outputs failed:"; tail -n 5 "$A/stage.log"',
            '  if [ "$rc" -eq 0 ]; then rc=1; fi',
            "fi",
        ]
    lines.append('finish "$rc"')
    return "\n".join(lines) + "\n"
