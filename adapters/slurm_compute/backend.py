"""The Slurm compute backend, the port's face: each attempt of a run is a batch job submitted to slurmrestd.

The job finds itself again by its name and comment (the run and the attempt) and by the job id kept in the
attempt's directory, so a handler restarted after a submit never submits a second job. The job stages its own
inputs and outputs by presigned URLs (script.py); its log is its output file in the attempt's directory, which
the handlers read on the filesystem they share with the nodes."""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

import structlog

from adapters import run_files, staged_outputs
from adapters.slurm_compute import job_dirs, script
from adapters.slurm_compute.api import JobRequest, SlurmApi, SlurmJob
from adapters.slurm_compute.job_dirs import JobDirs
from adapters.slurm_compute.rest import SlurmError, SlurmRest, SlurmUnreachable
from adapters.slurm_compute.status import classify, ended
from adapters.slurm_compute.tokens import EnvTokens, FileTokens, MintedTokens, TokenSource, TokenUnavailable
from adapters.stager import stage_plan
from events.payloads.run import RunSpec
from events.subjects import LOG_CHUNK_BYTES
from ports.compute import RunArtifacts, RunOwner, StartRefused, WorkloadPhase, WorkloadStatus
from ports.objects import ObjectStore
from schemas.names import outputs_key
from schemas.sites import SlurmTarget

log = structlog.get_logger("gxwf.slurm.compute")

# How often a followed log looks for more output, and how often it asks whether the job has ended meanwhile.
_LOG_POLL_SECONDS = 0.2
_LOG_STATE_SECONDS = 1.0
# How long a start waits for the job of a concurrent start of the same attempt.
_CLAIM_GRACE_SECONDS = 5.0
_CLAIM_NAME = "claimed"


def tokens_for(target: SlurmTarget) -> TokenSource:
    if target.jwt_key_file:
        return MintedTokens(Path(target.jwt_key_file), target.user, lifespan_seconds=target.token_lifespan_seconds)
    if target.token_file:
        return FileTokens(Path(target.token_file))
    assert target.token_env is not None  # the site schema admits exactly one source
    return EnvTokens(target.token_env)


def _refused(error: SlurmError) -> bool:
    """A submit another try would not change: a malformed request (HTTP 4xx), or one slurmctld refused for what
    it asks (Slurm's ESLURM_* errors, 2000-2999: bad partition, account or QOS, more GPUs or CPUs than any node
    has). Communication errors (1000-1999) and a slurmrestd in trouble are worth retrying."""
    if 400 <= error.status < 500 and error.status not in (401, 403, 408, 429):
        return True
    return any(2000 <= number < 3000 for number in error.numbers)


class SlurmJobBackend:
    def __init__(
        self,
        rest: SlurmRest,
        job_root: Path,
        *,
        site: str = "slurm",
        partition: str | None = None,
        account: str | None = None,
        qos: str | None = None,
        max_time_limit_minutes: int | None = None,
        gpu_gres: str = "gpu",
        container_runtime: script.ContainerRuntime = "none",
        gxwf_command: list[str] | None = None,
        job_path: str = "/usr/local/bin:/usr/bin:/bin",
        objects: ObjectStore | None = None,
        artifacts_dir: Path | None = None,
        stop_timeout_seconds: float = 30.0,
        poll_seconds: float = 0.2,
        outputs_max_bytes: int = staged_outputs.OUTPUTS_MAX_BYTES,
        outputs_max_entries: int = staged_outputs.OUTPUTS_MAX_ENTRIES,
    ) -> None:
        self.name = "slurm"
        self.site = site
        self.rest = rest
        self.dirs = JobDirs(job_root.absolute(), (artifacts_dir or job_root / ".artifacts").absolute())
        self.partition = partition
        self.account = account
        self.qos = qos
        self.max_time_limit_minutes = max_time_limit_minutes
        self.gpu_gres = gpu_gres
        self.container_runtime: script.ContainerRuntime = container_runtime
        # The jobs' stage steps: by default this interpreter's gxwf, for clusters whose nodes share its install.
        self.gxwf_command = gxwf_command or [sys.executable, "-m", "gxwf"]
        self.job_path = job_path
        # With it, a job fetches its inputs and uploads its outputs itself, by presigned URLs.
        self.objects = objects
        self.stop_timeout_seconds = stop_timeout_seconds
        self.poll_seconds = poll_seconds
        self.outputs_max_bytes = outputs_max_bytes
        self.outputs_max_entries = outputs_max_entries
        self._job_ids: dict[tuple[str, int], int] = {}

    @classmethod
    def for_site(cls, name: str, target: SlurmTarget, **kwargs: object) -> SlurmJobBackend:
        rest = SlurmRest(target.url, target.user, tokens_for(target), SlurmApi(target.api_version))
        return cls(
            rest,
            Path(target.job_root),
            site=name,
            partition=target.partition,
            account=target.account,
            qos=target.qos,
            max_time_limit_minutes=target.max_time_limit_minutes,
            gpu_gres=target.gpu_gres,
            container_runtime=target.container_runtime,
            gxwf_command=target.gxwf_command,
            job_path=target.job_path,
            **kwargs,  # type: ignore[arg-type]
        )

    async def close(self) -> None:
        await self.rest.close()

    # --- finding a run's jobs

    async def _find(self, run_id: str, attempt: int) -> SlurmJob | None:
        """The attempt's job as slurmctld knows it: by the id this backend recorded, else by name and comment."""
        job_id = self._job_ids.get((run_id, attempt))
        if job_id is None:
            job_id = await asyncio.to_thread(
                run_files.read_int, self.dirs.attempt_dir(run_id, attempt) / script.JOB_ID_NAME
            )
        if job_id is not None:
            self._job_ids[(run_id, attempt)] = job_id
            return await self.rest.job(job_id)
        if not await asyncio.to_thread((self.dirs.attempt_dir(run_id, attempt) / _CLAIM_NAME).exists):
            return None  # never claimed, so never submitted: no need to list the cluster's jobs
        found = await self._run_jobs(run_id, attempt)
        if not found:
            return None
        job = max(found, key=lambda j: j.job_id)
        self._job_ids[(run_id, attempt)] = job.job_id
        return job

    async def _jobs_of(self, run_id: str) -> list[SlurmJob]:
        """The jobs of the run's attempts that slurmctld still knows."""
        found = []
        for attempt in await asyncio.to_thread(self.dirs.attempts, run_id):
            if (job := await self._find(run_id, attempt)) is not None:
                found.append(job)
        return found

    async def _run_jobs(self, run_id: str, attempt: int | None = None) -> list[SlurmJob]:
        """Every job slurmctld still knows of the run (of one attempt), told by name and comment."""
        prefix = f"gxwf-{script.run_label(run_id)}-"
        found = []
        for job in await self.rest.jobs():
            if not job.name.startswith(prefix):
                continue
            number = job.name[len(prefix) :]
            if not number.isdigit() or job.comment != script.job_comment(run_id, int(number)):
                continue
            if attempt is None or int(number) == attempt:
                found.append(job)
        return found

    # --- the port

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        _, contained = script.workload_command(spec, self.container_runtime)
        minutes = max(1, math.ceil(spec.timeout_seconds / 60))
        if self.max_time_limit_minutes is not None and minutes > self.max_time_limit_minutes:
            raise StartRefused(
                f"the asset's running limit ({minutes} min) is longer than this Slurm site allows "
                f"({self.max_time_limit_minutes} min)"
            )
        if spec.inputs and self.objects is None:
            raise StartRefused("this run has inputs and the Slurm backend has no object store to stage them from")
        try:
            existing = await self._find(run_id, attempt)
        except SlurmUnreachable as error:
            raise RuntimeError(str(error)) from None
        if existing is not None:
            return f"slurm:{existing.job_id}"
        directory = self.dirs.attempt_dir(run_id, attempt)
        await asyncio.to_thread(self.dirs.prepare, directory)
        if not await asyncio.to_thread(run_files.claim, directory / _CLAIM_NAME):
            # Another start of this attempt (a redelivery while the first still runs) is submitting: its job
            # turns up in a moment. A claimer that died before submitting leaves none, and this start goes on.
            deadline = time.monotonic() + _CLAIM_GRACE_SECONDS
            while time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                if (job := await self._find(run_id, attempt)) is not None:
                    return f"slurm:{job.job_id}"
        stage_out = await self._write_plan(run_id, spec, attempt, directory)
        runtime = self.container_runtime if contained else "none"
        environment = script.environment(
            run_id,
            attempt,
            spec,
            parameters,
            PurePosixPath(directory),
            path=self.job_path,
            container=runtime if runtime != "none" else None,
        )
        body = script.batch_script(
            run_id,
            attempt,
            spec,
            PurePosixPath(directory),
            runtime=self.container_runtime,
            gxwf=self.gxwf_command,
            stage_out=stage_out,
            env_names=[k for k in environment if k not in ("PATH", "HOME")],
        )
        gres = None
        if spec.gpu_count:
            kind = f"{spec.gpu_type}:" if spec.gpu_type else ""
            gres = f"{self.gpu_gres}:{kind}{spec.gpu_count}"
        request = JobRequest(
            name=script.job_name(run_id, attempt),
            comment=script.job_comment(run_id, attempt),
            script=body,
            working_directory=str(directory / "work"),
            standard_output=str(directory / script.LOG_NAME),
            environment=environment,
            cpus=max(1, math.ceil(spec.cpu or 1)),
            memory_mb=spec.memory_mb,
            time_limit_minutes=minutes,
            partition=self.partition,
            account=self.account,
            qos=self.qos,
            gres=gres,
        )
        try:
            job_id = await self.rest.submit(request)
        except SlurmError as error:
            if _refused(error):
                raise StartRefused(str(error)) from None
            raise
        except SlurmUnreachable as error:
            # The submit may have arrived: a job found now is this attempt's; none, and the start is retried.
            if (job := await self._find(run_id, attempt)) is not None:
                job_id = job.job_id
            else:
                raise RuntimeError(str(error)) from None
        except TokenUnavailable as error:
            raise RuntimeError(str(error)) from None
        self._job_ids[(run_id, attempt)] = job_id
        await asyncio.to_thread(run_files.write_atomically, directory / script.JOB_ID_NAME, str(job_id))
        log.info("job submitted", run_id=run_id, attempt=attempt, job_id=job_id)
        return f"slurm:{job_id}"

    async def _write_plan(self, run_id: str, spec: RunSpec, attempt: int, directory: Path) -> bool:
        """The attempt's presigned URLs, readable by the job's user only; whether the job uploads its outputs."""
        if self.objects is None:
            return False
        valid = min(
            int(spec.pending_timeout_seconds + spec.timeout_seconds) + 3600, staged_outputs.LONGEST_SIGNATURE_SECONDS
        )
        outputs_url = await self.objects.presigned_url(
            "PUT", outputs_key(run_id, attempt), expires_seconds=valid, content_type="application/x-tar"
        )
        plan = await stage_plan(self.objects, spec.inputs, valid_seconds=valid, outputs_url=outputs_url)
        await asyncio.to_thread(run_files.write_private, directory / script.PLAN_NAME, plan.model_dump_json())
        return True

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        job = await self._find(run_id, attempt)
        if job is not None:
            return classify(job)
        # slurmctld forgets finished jobs after MinJobAge; the script recorded how its workload ended.
        directory = self.dirs.attempt_dir(run_id, attempt)
        code = await asyncio.to_thread(run_files.read_int, directory / script.EXIT_CODE_NAME)
        if code is not None:
            return WorkloadStatus(WorkloadPhase.EXITED, code, failure=None if code == 0 else "exit_code")
        if await asyncio.to_thread((directory / script.JOB_ID_NAME).exists):
            return WorkloadStatus(
                WorkloadPhase.MISSING, detail="the Slurm job is gone without an exit status", failure="vanished"
            )
        return WorkloadStatus(WorkloadPhase.MISSING, detail="the run has no Slurm job", failure="vanished")

    async def stop(self, run_id: str) -> bool:
        """Cancel every job of the run still pending or running and wait, bounded, until slurmctld says each
        has ended (a running job gets SIGTERM, then SIGKILL after the cluster's KillWait)."""
        # By the attempts' records; none (the job root lost), by slurmctld's job list.
        jobs = await self._jobs_of(run_id) or await self._run_jobs(run_id)
        live = [job for job in jobs if not ended(job)]
        for job in live:
            await self.rest.cancel(job.job_id)
        deadline = time.monotonic() + self.stop_timeout_seconds
        while live:
            still = []
            for job in live:
                now = await self.rest.job(job.job_id)
                if now is not None and not ended(now):
                    still.append(now)
            live = still
            if not live:
                break
            if time.monotonic() > deadline:
                log.warning("jobs not ended after the stop", run_id=run_id, jobs=[j.job_id for j in live])
                return False
            await asyncio.sleep(self.poll_seconds)
        return True

    async def artifacts(self, run_id: str) -> RunArtifacts:
        """The run's log (every attempt's output file in order, separated as on other backends) and the last
        attempt's outputs: the archive its job uploaded, or without an object store its outputs directory."""
        attempts = await asyncio.to_thread(self.dirs.attempts, run_id)
        if not attempts:
            return RunArtifacts([], None)
        saved = await asyncio.to_thread(self.dirs.save_log, run_id, attempts)
        last = attempts[-1]
        if self.objects is not None:
            outputs = await staged_outputs.fetch_outputs(
                self.objects,
                run_id,
                last,
                self.dirs.outputs_dir(run_id),
                max_bytes=self.outputs_max_bytes,
                max_entries=self.outputs_max_entries,
            )
        else:
            outputs = await asyncio.to_thread(job_dirs.regular_files, self.dirs.attempt_dir(run_id, last) / "outputs")
        return RunArtifacts(outputs, saved)

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        """The attempt's output file from `offset` on, polled until its job has ended and all of it is read."""
        path = self.dirs.log_path(run_id, attempt)
        if not await asyncio.to_thread((self.dirs.attempt_dir(run_id, attempt) / script.JOB_ID_NAME).exists):
            return  # not submitted yet
        position = offset
        asked = 0.0
        finished = False
        while True:
            data = await asyncio.to_thread(run_files.read_span, path, position, LOG_CHUNK_BYTES)
            if data:
                position += len(data)
                yield data
                continue
            if finished:
                return
            if time.monotonic() - asked >= _LOG_STATE_SECONDS:
                asked = time.monotonic()
                job = await self._find(run_id, attempt)
                # Ended: one more read takes what was written before the end.
                finished = job is None or ended(job)
                if finished:
                    continue
            await asyncio.sleep(_LOG_POLL_SECONDS)

    async def discard(self, run_id: str) -> None:
        """The run's results are published: its job directories (staged inputs, work, outputs, logs), the log and
        outputs kept here and the archives its jobs uploaded go."""
        await asyncio.to_thread(shutil.rmtree, self.dirs.run_dir(run_id), True)
        await self._remove_local(run_id)
        if self.objects is not None:
            await staged_outputs.remove_staged(self.objects, run_id)
        for key in [k for k in self._job_ids if k[0] == run_id]:
            del self._job_ids[key]

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        """Remove the ended runs' job directories; a run with a job still pending or running keeps its own."""
        for run_id in run_ids:
            if any(not ended(job) for job in await self._jobs_of(run_id)):
                return False
            await self.discard(run_id)
        return True

    async def _remove_local(self, run_id: str) -> None:
        await asyncio.to_thread(self.dirs.saved_log(run_id).unlink, True)
        await asyncio.to_thread(shutil.rmtree, self.dirs.outputs_dir(run_id), True)
