"""The local compute backend: a run is a detached process group on this machine.

The workload is started in its own session and outlives the handler process that started it, so a
crashed or restarted handler neither kills a run nor starts it twice: the run directory is the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

from events.payloads.run import RunSpec
from ports.compute import RunArtifacts, WorkloadPhase, WorkloadStatus

# The wrapper records its process group, runs the command with its output in log.txt, then writes the exit
# status atomically. It backgrounds itself so that nothing in the handler has to wait for or reap it.
_WRAPPER = r"""
run_dir=$1; mem_kb=$2; shift 2
(
  trap '' HUP
  rc=0
  # Address-space limit for the workload and its children: the local stand-in for a pod's memory limit.
  if [ "$mem_kb" -gt 0 ]; then ulimit -v "$mem_kb"; fi
  "$@" >>"$run_dir/log.txt" 2>&1 </dev/null || rc=$?
  printf '%s' "$rc" >"$run_dir/exit_code.tmp" && mv "$run_dir/exit_code.tmp" "$run_dir/exit_code"
) &
printf '%s' "$$" >"$run_dir/pgid.tmp" && mv "$run_dir/pgid.tmp" "$run_dir/pgid"
"""

# A start that died after claiming the run but before recording the process group is retried after this.
_CLAIM_GRACE_SECONDS = 5.0


class LocalProcessBackend:
    def __init__(self, root: Path, *, site: str = "local", stop_grace_seconds: float = 5.0) -> None:
        self.name = "local"
        self.site = site
        self.root = root
        self.stop_grace_seconds = stop_grace_seconds
        root.mkdir(parents=True, exist_ok=True)

    def run_dir(self, run_id: str) -> Path:
        safe = run_id.replace("/", "_").replace("\x00", "_")
        if safe in {"", ".", ".."}:
            raise ValueError(f"invalid run id {run_id!r}")
        return self.root / safe

    async def start(self, run_id: str, spec: RunSpec, parameters: dict[str, str]) -> str:
        run_dir = self.run_dir(run_id)
        (run_dir / "work").mkdir(parents=True, exist_ok=True)
        (run_dir / "outputs").mkdir(exist_ok=True)
        pgid = self._pgid(run_dir)
        if pgid is not None:
            return f"pgid:{pgid}"
        if not self._claim(run_dir):
            deadline = time.monotonic() + _CLAIM_GRACE_SECONDS
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if (pgid := self._pgid(run_dir)) is not None:
                    return f"pgid:{pgid}"
        (run_dir / "spec.json").write_text(json.dumps({"spec": spec.model_dump(mode="json"), "parameters": parameters}))
        env = {
            **{k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME", "TMPDIR")},
            **spec.env,
            **parameters,
            "GXWF_RUN_ID": run_id,
            "GXWF_OUTPUT_DIR": str(run_dir / "outputs"),
        }
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            _WRAPPER,
            "gxwf-run",
            str(run_dir),
            str((spec.memory_mb or 0) * 1024),
            *spec.command,
            cwd=run_dir / "work",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        await proc.wait()
        pgid = self._pgid(run_dir)
        if pgid is None:
            raise RuntimeError(f"run {run_id}: the local workload did not start (wrapper exit {proc.returncode})")
        return f"pgid:{pgid}"

    async def status(self, run_id: str) -> WorkloadStatus:
        run_dir = self.run_dir(run_id)
        exit_file = run_dir / "exit_code"
        if exit_file.exists():
            code = int(exit_file.read_text() or "1")
            return WorkloadStatus(WorkloadPhase.EXITED, code)
        pgid = self._pgid(run_dir)
        if pgid is not None and _run_processes(run_id, pgid):
            return WorkloadStatus(WorkloadPhase.RUNNING)
        # The group may have written its exit status between our two looks.
        if exit_file.exists():
            return WorkloadStatus(WorkloadPhase.EXITED, int(exit_file.read_text() or "1"))
        if pgid is None:
            return WorkloadStatus(WorkloadPhase.MISSING, detail="the workload was never started")
        return WorkloadStatus(WorkloadPhase.MISSING, detail="the workload's processes are gone without an exit status")

    async def stop(self, run_id: str) -> bool:
        """SIGTERM, a grace period, then SIGKILL to every process of the run, its escaped children included."""
        pgid = self._pgid(self.run_dir(run_id))
        if pgid is None:
            return True
        deadline = time.monotonic() + self.stop_grace_seconds
        sig = signal.SIGTERM
        while True:
            victims = _run_processes(run_id, pgid)
            if not victims:
                return True
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            if sig == signal.SIGKILL and time.monotonic() > deadline + self.stop_grace_seconds:
                return not _run_processes(run_id, pgid)
            await asyncio.sleep(0.05)
            if time.monotonic() > deadline:
                sig = signal.SIGKILL

    async def artifacts(self, run_id: str) -> RunArtifacts:
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
        log = run_dir / "log.txt"
        return RunArtifacts(outputs, log if log.exists() else None)

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "log.txt"

    @staticmethod
    def _claim(run_dir: Path) -> bool:
        try:
            fd = os.open(run_dir / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        return True

    @staticmethod
    def _pgid(run_dir: Path) -> int | None:
        try:
            return int((run_dir / "pgid").read_text())
        except (FileNotFoundError, ValueError):
            return None


def _run_processes(run_id: str, pgid: int) -> list[int]:
    """Live processes of a run: its process group, and any descendant that left the group (setsid, daemons),
    found by the GXWF_RUN_ID every workload process inherits. Zombies do not count."""
    marker = f"GXWF_RUN_ID={run_id}".encode() + b"\0"
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command name: state ppid pgrp ...
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] == "Z":
                continue
            environ = b"\0" + (entry / "environ").read_bytes()
            if int(fields[2]) == pgid or b"\0" + marker in environ:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
