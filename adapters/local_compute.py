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
from ports.compute import WorkloadPhase, WorkloadStatus

# The wrapper records its process group, runs the command with its output in log.txt, then writes the exit
# status atomically. It backgrounds itself so that nothing in the handler has to wait for or reap it.
_WRAPPER = r"""
run_dir=$1; shift
(
  trap '' HUP
  rc=0
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
        if pgid is not None and _group_alive(pgid):
            return WorkloadStatus(WorkloadPhase.RUNNING)
        # The group may have written its exit status between our two looks.
        if exit_file.exists():
            return WorkloadStatus(WorkloadPhase.EXITED, int(exit_file.read_text() or "1"))
        if pgid is None:
            return WorkloadStatus(WorkloadPhase.MISSING, detail="the workload was never started")
        return WorkloadStatus(WorkloadPhase.MISSING, detail="the workload's processes are gone without an exit status")

    async def stop(self, run_id: str) -> None:
        pgid = self._pgid(self.run_dir(run_id))
        if pgid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace_seconds
        while _group_alive(pgid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

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


def _group_alive(pgid: int) -> bool:
    """True while any process of the group lives; zombies (exited, not yet reaped) do not count."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
