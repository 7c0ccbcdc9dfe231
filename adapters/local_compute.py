"""The local compute backend: a run is a detached process group on this machine.

The workload is started in its own session and outlives the handler process that started it, so a
crashed or restarted handler neither kills a run nor starts it twice: the run directory is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from adapters import run_files
from adapters.input_layout import input_env
from adapters.stager import StageError, link_paths, stage_in, stage_plan
from events.payloads.run import RunSpec, StagedInput
from events.subjects import LOG_CHUNK_BYTES
from ports.compute import RunArtifacts, RunOwner, StartRefused, WorkloadPhase, WorkloadStatus
from ports.objects import ObjectStore
from schemas.assets import reserved_env_name
from schemas.names import LOG_FILE, attempt_separator, local_run_dir_name

# The wrapper records its process group, runs the command with its output appended to log.txt, then writes
# the exit status atomically. It backgrounds itself so that nothing in the handler has to wait for or reap it.
# Each attempt of a run keeps its own records; the log and the outputs directory are the run's.
_WRAPPER = r"""
run_dir=$1; state=$2; mem_kb=$3; shift 3
(
  trap '' HUP
  rc=0
  # Address-space limit for the workload and its children: the local stand-in for a pod's memory limit.
  if [ "$mem_kb" -gt 0 ]; then ulimit -v "$mem_kb"; fi
  "$@" >>"$run_dir/log.txt" 2>&1 </dev/null || rc=$?
  # Where this attempt's output ends in the run's log (before the exit status: a follower reads it first).
  wc -c <"$run_dir/log.txt" | tr -d ' ' >"$state/log_end.tmp" && mv "$state/log_end.tmp" "$state/log_end"
  printf '%s' "$rc" >"$state/exit_code.tmp" && mv "$state/exit_code.tmp" "$state/exit_code"
) &
printf '%s' "$$" >"$state/pgid.tmp" && mv "$state/pgid.tmp" "$state/pgid"
"""

# How often a followed live log looks for more output.
_LOG_POLL_SECONDS = 0.2
# A start that died after claiming the attempt but before recording the process group is retried after this.
_CLAIM_GRACE_SECONDS = 5.0
# Presigned input URLs are used at once, by this process: an hour is plenty even for large inputs.
_STAGE_URL_SECONDS = 3600


class LocalProcessBackend:
    def __init__(
        self,
        root: Path,
        *,
        site: str = "local",
        stop_grace_seconds: float = 5.0,
        objects: ObjectStore | None = None,
    ) -> None:
        self.name = "local"
        self.site = site
        # Absolute: the wrapper runs with the run's work directory as its cwd.
        self.root = root.absolute()
        self.stop_grace_seconds = stop_grace_seconds
        # Where the runs' uploaded inputs come from (stage-in); without it a run that names inputs cannot start.
        self.objects = objects
        root.mkdir(parents=True, exist_ok=True)

    def run_dir(self, run_id: str) -> Path:
        return self.root / local_run_dir_name(run_id)

    def attempt_dir(self, run_id: str, attempt: int) -> Path:
        return self.run_dir(run_id) / "attempts" / str(attempt)

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        run_dir = self.run_dir(run_id)
        state = self.attempt_dir(run_id, attempt)
        state.mkdir(parents=True, exist_ok=True)
        (run_dir / "work").mkdir(exist_ok=True)
        (run_dir / "outputs").mkdir(exist_ok=True)
        pgid = run_files.read_int(state / "pgid")
        if pgid is not None:
            return f"pgid:{pgid}"
        await self._stage_in(run_dir, spec.inputs)
        # Assets written for the local backend name relative paths (`outputs/count.txt`): under the work dir
        # they land in the run's outputs, which is what the results handler publishes.
        outputs_link = run_dir / "work" / "outputs"
        if not outputs_link.exists() and not outputs_link.is_symlink():
            outputs_link.symlink_to(run_dir / "outputs", target_is_directory=True)
        if not run_files.claim(state / "claimed"):
            deadline = time.monotonic() + _CLAIM_GRACE_SECONDS
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if (pgid := run_files.read_int(state / "pgid")) is not None:
                    return f"pgid:{pgid}"
        (state / "spec.json").write_text(json.dumps({"spec": spec.model_dump(mode="json"), "parameters": parameters}))
        if attempt > 1:
            # The attempt before has ended: fix where its output ends (if its wrapper could not, killed with it)
            # before this attempt's separator follows it, so its live log never includes the separator.
            earlier = self.attempt_dir(run_id, attempt - 1) / "log_end"
            if not earlier.exists() and earlier.parent.exists():
                earlier.write_text(str(_size(run_dir / LOG_FILE)))
            with (run_dir / LOG_FILE).open("a") as log:
                log.write(attempt_separator(attempt))
        # Where this attempt's output begins in the run's log: its live log is counted from there.
        (state / "log_start").write_text(str(_size(run_dir / LOG_FILE)))
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")},
            # Never a reserved name (PATH, LD_PRELOAD, GXWF_*...): catalogue and jobs handler refuse them already.
            **{k: v for k, v in {**spec.env, **parameters}.items() if not reserved_env_name(k)},
            "GXWF_RUN_ID": run_id,
            "GXWF_ATTEMPT": str(attempt),
            "GXWF_OUTPUT_DIR": str(run_dir / "outputs"),
            **(input_env(run_dir / "inputs", (i.name for i in spec.inputs)) if spec.inputs else {}),
        }
        # The wrapper's own complaints (not the workload's: that goes to log.txt) say why a start failed.
        complaints = state / "start.err"
        with complaints.open("wb") as stderr:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                _WRAPPER,
                "gxwf-run",
                str(run_dir),
                str(state),
                str((spec.memory_mb or 0) * 1024),
                *spec.command,
                cwd=run_dir / "work",
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
            await proc.wait()
        pgid = run_files.read_int(state / "pgid")
        if pgid is None:
            said = complaints.read_text(errors="replace").strip().splitlines()
            why = f": {said[-1][:300]}" if said else ""
            raise StartRefused(f"the local workload did not start (wrapper exit {proc.returncode}){why}")
        return f"pgid:{pgid}"

    async def _stage_in(self, run_dir: Path, inputs: list[StagedInput]) -> None:
        """Fetch the run's inputs to `inputs/<name>` (once: a retried start finds them there) with the stager a
        Kubernetes pod runs (presigned URLs, every object's size and sha256 checked), and link each relative asset
        path under the work dir to it. Staged in a scratch directory renamed at the end, so a crash midway leaves no
        half-staged inputs behind."""
        target = run_dir / "inputs"
        if not inputs:
            return
        if self.objects is None:
            raise StartRefused("this run has inputs and the local backend has no object store to stage them from")
        plan = await stage_plan(self.objects, inputs, valid_seconds=_STAGE_URL_SECONDS)
        try:
            if not target.exists():
                scratch = run_dir / f".inputs-{uuid.uuid4().hex[:8]}"
                scratch.mkdir()
                try:
                    await asyncio.to_thread(stage_in, plan, scratch)
                    try:
                        scratch.rename(target)
                    except OSError:
                        if not target.exists():
                            raise
                finally:
                    await asyncio.to_thread(shutil.rmtree, scratch, True)
            await asyncio.to_thread(link_paths, plan.inputs, target, run_dir / "work")
        except StageError as error:
            raise StartRefused(str(error)) from None

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        # The watcher asks for every active run on every pass, and each answer may scan all of /proc: in a worker
        # thread, so that the handlers sharing this loop (acks, heartbeats, the log shipper) are not held up.
        return await asyncio.to_thread(self._status_now, run_id, attempt)

    def _status_now(self, run_id: str, attempt: int) -> WorkloadStatus:
        state = self.attempt_dir(run_id, attempt)
        exit_file = state / "exit_code"
        if (code := run_files.read_int(exit_file)) is not None:
            return _exited(code)
        pgid = run_files.read_int(state / "pgid")
        if pgid is not None and _run_processes(run_id, pgid):
            return WorkloadStatus(WorkloadPhase.RUNNING)
        # The group may have written its exit status between our two looks.
        if (code := run_files.read_int(exit_file)) is not None:
            return _exited(code)
        if pgid is None:
            return WorkloadStatus(WorkloadPhase.MISSING, detail="the workload was never started", failure="vanished")
        return WorkloadStatus(
            WorkloadPhase.MISSING,
            detail="the workload's processes are gone without an exit status",
            failure="vanished",
        )

    async def stop(self, run_id: str) -> bool:
        """SIGTERM, a grace period, then SIGKILL to every process of the run, its escaped children included."""
        # Reading the records and scanning /proc run in a worker thread: the loop keeps serving other runs.
        groups = await asyncio.to_thread(_groups, self.run_dir(run_id) / "attempts")
        deadline = time.monotonic() + self.stop_grace_seconds
        sig = signal.SIGTERM
        while True:
            victims = await asyncio.to_thread(_victims, run_id, groups)
            if not victims:
                return True
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            if sig == signal.SIGKILL and time.monotonic() > deadline + self.stop_grace_seconds:
                return not await asyncio.to_thread(_victims, run_id, groups)
            await asyncio.sleep(0.05)
            if time.monotonic() > deadline:
                sig = signal.SIGKILL

    async def artifacts(self, run_id: str) -> RunArtifacts:
        # A run may leave thousands of files: walked in a worker thread.
        return await asyncio.to_thread(self._artifacts_now, run_id)

    def _artifacts_now(self, run_id: str) -> RunArtifacts:
        run_dir = self.run_dir(run_id)
        outputs_dir = run_dir / "outputs"
        outputs = (
            sorted(
                (str(path.relative_to(outputs_dir)), path)
                for path in outputs_dir.rglob("*")
                # Links could point anywhere on this machine: publish only regular files inside the run.
                if path.is_file() and not path.is_symlink()
            )
            if outputs_dir.is_dir()
            else []
        )
        log = run_dir / LOG_FILE
        return RunArtifacts(outputs, log if log.exists() else None)

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / LOG_FILE

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        """The attempt's part of the run's log.txt from `offset` on, polled while the attempt's processes live."""
        state = self.attempt_dir(run_id, attempt)
        start = await asyncio.to_thread(run_files.read_int, state / "log_start")
        if start is None:
            return  # not started yet
        log = self.log_path(run_id)
        position = start + offset
        while True:
            # Every look at the attempt's records and the log is file I/O: one worker-thread hop per poll.
            data, ended = await asyncio.to_thread(self._next_span, log, state, position)
            if data:
                position += len(data)
                yield data
                continue
            if ended:
                return
            await asyncio.sleep(_LOG_POLL_SECONDS)

    @classmethod
    def _next_span(cls, log: Path, state: Path, position: int) -> tuple[bytes, bool]:
        """The attempt's output from `position` on (at most one chunk), and whether the attempt had ended before it
        was read (so nothing more will come once this is shipped)."""
        end = run_files.read_int(state / "log_end")
        ended = end is not None or (state / "exit_code").exists() or not cls._alive(state)
        data = run_files.read_span(log, position, LOG_CHUNK_BYTES, end)
        if end is None and (end := run_files.read_int(state / "log_end")) is not None:
            # The attempt ended while this was read: a next attempt's separator may follow its end.
            data = data[: max(0, end - position)]
        return data, ended

    @staticmethod
    def _alive(state: Path) -> bool:
        """Cheaply, for a follower polling often: the attempt's process group still exists (the wrapper writes the
        exit status when the workload ends; this only notices a workload that vanished without one)."""
        pgid = run_files.read_int(state / "pgid")
        if pgid is None:
            return True  # starting
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    async def discard(self, run_id: str) -> None:
        """Nothing yet: the run directory is small and goes with the consumer's release."""

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        """Remove the ended runs' directories (staged inputs, work, outputs, log): their results are in the
        object store by now. A run whose processes are still there keeps its directory."""
        for run_id in run_ids:
            if await asyncio.to_thread(_run_processes, run_id, 0):
                return False
            await asyncio.to_thread(shutil.rmtree, self.run_dir(run_id), True)
        return not any(self.run_dir(run_id).exists() for run_id in run_ids)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _exited(code: int) -> WorkloadStatus:
    return WorkloadStatus(WorkloadPhase.EXITED, code, failure=None if code == 0 else "exit_code")


def _groups(attempts: Path) -> set[int]:
    """The process group of every attempt of a run that recorded one."""
    return {pgid for d in attempts.glob("*") if (pgid := run_files.read_int(d / "pgid")) is not None}


def _victims(run_id: str, groups: set[int]) -> set[int]:
    """Every live process of the run: its attempts' groups, or (none recorded) those found by its GXWF_RUN_ID."""
    return {pid for pgid in groups or {0} for pid in _run_processes(run_id, pgid)}


def _run_processes(run_id: str, pgid: int, proc: Path = Path("/proc")) -> list[int]:
    """Live processes of a run: its process group, and any descendant that left the group (setsid, daemons),
    found by the GXWF_RUN_ID every workload process inherits. Zombies do not count. Group 0 means none is
    known: kernel threads are in group 0, and must never be taken for the run's."""
    marker = f"GXWF_RUN_ID={run_id}".encode() + b"\0"
    found: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state ppid pgrp ...
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            environ = b"\0" + (entry / "environ").read_bytes()
            if (pgid > 0 and int(fields[2]) == pgid) or b"\0" + marker in environ:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
