"""`gxwf handlers run --replicas N` as tests start it: the parent process and its replicas' pids file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from gxwf.replicas import pids_file
from gxwf.settings import Settings
from tests.backbone.test_crash_redelivery import handler_env

GXWF = [sys.executable, "-m", "gxwf"]


@dataclass
class Replicas:
    parent: subprocess.Popen[bytes]
    path: Path

    def record(self) -> dict[str, Any]:
        return dict(json.loads(self.path.read_text()))

    def pids(self) -> list[int]:
        return [int(replica["pid"]) for replica in self.record()["replicas"]]

    async def stop(self, timeout: float = 60) -> int:
        if self.parent.poll() is None:
            self.parent.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.parent.wait, timeout)


async def start_replicas(
    settings: Settings, count: int, *args: str, env: dict[str, str] | None = None, groups: tuple[str, ...] = ()
) -> Replicas:
    """The parent, once it said every replica is ready."""
    only = [arg for group in groups for arg in ("--only", group)]
    proc = subprocess.Popen(
        [*GXWF, "handlers", "run", "--replicas", str(count), *only, *args],
        env={**handler_env(settings), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=60)
        assert line, f"the parent ended before its replicas were ready (status {proc.poll()})"
        if line.startswith(b"handlers ready"):
            break
    # Its replicas' lines keep coming: drained, so a full pipe never blocks the parent.
    asyncio.get_running_loop().run_in_executor(None, proc.stdout.read)
    return Replicas(proc, pids_file(settings.state_dir, groups or None))


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int], timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    left = pids
    while left and time.monotonic() < deadline:
        left = [pid for pid in left if alive(pid)]
        time.sleep(0.1)
    return left


def pause(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)


def resume(pid: int) -> None:
    os.kill(pid, signal.SIGCONT)
