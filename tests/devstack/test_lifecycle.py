"""`python -m devstack` as users run it: a clean stop on SIGTERM, and no orphans when it is killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import psutil

from tests.devstack.helpers import identities, still_running

ROLES = {"nats", "mongo", "s3"}


async def start_devstack(tmp_path: Path) -> tuple[asyncio.subprocess.Process, dict[str, int], Path]:
    state = tmp_path / "state"
    output = tmp_path / "devstack.out"
    # Only flags decide what `python -m devstack` starts, but keep GXWF_* out anyway.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GXWF_")}
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devstack", "--state-dir", str(state), stdout=sink, stderr=sink, env=env
        )
    stack_file = state / "stack.json"
    for _ in range(600):
        if stack_file.exists():
            break
        if process.returncode is not None:
            raise AssertionError(f"devstack exited with {process.returncode}:\n{output.read_text()}")
        await asyncio.sleep(0.1)
    else:
        process.kill()
        raise AssertionError(f"no stack.json after 60s:\n{output.read_text()}")
    pids: dict[str, int] = json.loads(stack_file.read_text())["pids"]
    assert set(pids) == ROLES
    assert {child.pid for child in psutil.Process(process.pid).children()} == set(pids.values())
    return process, pids, output


async def test_sigterm_stops_every_server_and_exits_zero(tmp_path: Path) -> None:
    process, pids, output = await start_devstack(tmp_path)
    servers = identities(pids.values())
    process.send_signal(signal.SIGTERM)
    returncode = await asyncio.wait_for(process.wait(), timeout=40)
    log = output.read_text()
    assert returncode == 0, log
    assert still_running(servers, timeout=0) == []
    assert not (tmp_path / "state" / "stack.json").exists()
    assert "stack ready in" in log
    assert log.rstrip().endswith("devstack: stopped")


async def test_sigkill_of_the_launcher_leaves_no_server_behind(tmp_path: Path) -> None:
    process, pids, _ = await start_devstack(tmp_path)
    servers = identities(pids.values())
    process.kill()
    await process.wait()
    assert await asyncio.to_thread(still_running, servers, 10.0) == []


async def test_a_killed_server_comes_back_and_stack_json_names_its_new_pid(tmp_path: Path) -> None:
    process, pids, output = await start_devstack(tmp_path)
    try:
        os.kill(pids["s3"], signal.SIGKILL)
        stack_file = tmp_path / "state" / "stack.json"
        for _ in range(600):
            now: dict[str, int] = json.loads(stack_file.read_text())["pids"]
            if now["s3"] != pids["s3"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"stack.json still names the dead server:\n{output.read_text()}")
        assert {child.pid for child in psutil.Process(process.pid).children()} == set(now.values())
        assert "devstack: seaweedfs is back after " in output.read_text()
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(process.wait(), timeout=40)
    assert returncode == 0, output.read_text()
