"""`gxwf up` while one of its servers is SIGKILLed during a burst of runs: the server comes back on its ports with
its data, the handlers and services carry on, /readyz says not ready meanwhile, and every accepted run ends
succeeded with nothing dead-lettered; a server that cannot come back ends `gxwf up` with one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import nats
import psutil
import pytest
from pymongo import AsyncMongoClient

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, spec_for_asset
from events.wire import publish_to_jetstream
from gxwf.commands.runs import definition_version
from schemas.assets import TimeLimits, WorkflowAssetDefinition

# Which of `gxwf up`'s children is which server: a word of its command line.
PROGRAMS = {"nats": "nats-server", "mongo": "secantusd-py", "s3": "weed"}


class Up:
    """`gxwf up` as a subprocess, its stderr read as it comes (a full pipe would stall it)."""

    def __init__(self, state: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
        env["COLUMNS"] = "200"
        self.state = state
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    async def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while marker not in self.output:
            assert self.proc.poll() is None or marker in self.output, f"exited first:\n{self.output}"
            assert time.monotonic() < deadline, f"{marker!r} not printed:\n{self.output}"
            await asyncio.sleep(0.2)

    def endpoints(self) -> dict[str, Any]:
        return dict(json.loads((self.state / "endpoints.json").read_text()))

    def server_pid(self, role: str) -> int:
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            with_args = child.cmdline()
            if any(arg.endswith(PROGRAMS[role]) for arg in with_args[:2]):
                return child.pid
        raise AssertionError(f"no {PROGRAMS[role]} among the children of gxwf up")

    async def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.proc.wait, 60)
        self._reader.join(5)
        return self.proc.returncode


class Runs:
    """Runs of one short command, published straight to JetStream as `gxwf runs submit` does."""

    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.endpoints = endpoints
        self.definition = WorkflowAssetDefinition(
            id=f"adhoc-burst-{uuid.uuid4().hex[:6]}",
            title="a short run",
            command=["sh", "-c", "echo done"],
            time_limits=TimeLimits(running_seconds=120),
        )
        self.accepted: list[str] = []
        self.version = 1

    async def apply(self) -> None:
        store = MongoStateStore.connect(self.endpoints["mongo"], "gxwf")
        try:
            catalogue = MongoAssetCatalogue(store.db)
            stored, _ = await catalogue.apply(self.definition)
            self.version = stored.version
        finally:
            await store.close()

    async def publish(self, count: int) -> None:
        """Publish `count` runs; each is retried (same event id: JetStream drops duplicates) until accepted."""
        nc = await nats.connect(self.endpoints["nats"], max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        try:
            js = nc.jetstream(timeout=2)
            for _ in range(count):
                run_id = f"run-{uuid.uuid4().hex[:12]}"
                request = RunRequested(
                    run_id=run_id,
                    consumer_id=f"consumer-{len(self.accepted) % 5}",
                    asset_id=self.definition.id,
                    asset_version=self.version,
                    spec=spec_for_asset(definition_version(self.definition), []),
                )
                event = new_event(s.RUN_REQUESTED, request, subject=run_id, correlationid=run_id)
                deadline = time.monotonic() + 120
                while True:
                    try:
                        await publish_to_jetstream(js, event)
                        break
                    except Exception:
                        assert time.monotonic() < deadline, "JetStream did not accept a run within 2 minutes"
                        await asyncio.sleep(0.2)
                self.accepted.append(run_id)
        finally:
            await nc.close()

    async def states(self) -> dict[str, str]:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.endpoints["mongo"], serverSelectionTimeoutMS=3000
        )
        try:
            found = await client["gxwf"]["runs"].find({"_id": {"$in": self.accepted}}, {"state": 1}).to_list()
        finally:
            await client.close()
        return {doc["_id"]: doc["state"] for doc in found}

    async def until_all_ended(self, timeout: float) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                states = await self.states()
            except Exception:  # the store may still be coming back
                states = {}
            if len(states) == len(self.accepted) and all(
                v in {"succeeded", "failed", "stopped"} for v in states.values()
            ):
                return states
            await asyncio.sleep(1)
        raise AssertionError(
            f"not every run ended: {sorted(set(states.values()))}, {len(states)} of {len(self.accepted)}"
        )


async def dead_letters(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(s.DLQ_STREAM)
    finally:
        await nc.close()
    return int(info.state.messages)


class Readiness:
    """Polls the WorkflowApi's /readyz in the background and keeps every status it answered."""

    def __init__(self, url: str) -> None:
        self.url = url + "/readyz"
        self.seen: list[int] = []
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def _poll(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                try:
                    self.seen.append((await asyncio.wait_for(client.get(self.url), 3)).status_code)
                except Exception as error:  # no answer at all counts as not ready
                    self.errors.append(repr(error))
                    self.seen.append(0)
                await asyncio.sleep(0.05)

    def __enter__(self) -> Readiness:
        self._task = asyncio.get_running_loop().create_task(self._poll())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output


@pytest.mark.parametrize(
    ("role", "name", "before", "after"),
    [("nats", "nats", 30, 30), ("mongo", "secantusd", 10, 10), ("s3", "seaweedfs", 10, 10)],
    ids=["nats", "mongo", "s3"],
)
async def test_a_server_killed_during_a_burst_comes_back_and_every_run_succeeds(
    tmp_path: Path, role: str, name: str, before: int, after: int
) -> None:
    up = Up(tmp_path / "state")
    try:
        await up.wait_for("Running.", 180)
        endpoints = up.endpoints()
        runs = Runs(endpoints)
        await runs.apply()
        with Readiness(endpoints["workflow_api"]) as ready:
            await until(lambda: 200 in ready.seen, 30, "the WorkflowApi was never ready")
            await runs.publish(before)
            pid = up.server_pid(role)
            os.kill(pid, signal.SIGKILL)
            await until(lambda: 503 in ready.seen, 30, f"/readyz never said not ready: {ready.seen} {ready.errors}")
            await runs.publish(after)
            await up.wait_for(f"{name} is back after", 120)
            states = await runs.until_all_ended(300)
            marked = len(ready.seen)
            await until(lambda: 200 in ready.seen[marked:], 60, f"/readyz never ready again: {ready.seen[marked:]}")
        assert set(states.values()) == {"succeeded"}, states
        assert len(states) == before + after
        assert await dead_letters(endpoints["nats"]) == 0
        output = up.output
        assert f"{name} (pid {pid}) died (signal SIGKILL); restarting on 127.0.0.1:" in output or (
            f"{name} (pid {pid}) died (signal SIGKILL); restarting on " in output
        ), output
        no_traceback(output)
        assert up.proc.poll() is None, output
    finally:
        status = await up.stop()
    assert status == 0, up.output
    no_traceback(up.output)


async def test_a_server_that_cannot_come_back_ends_up_with_one_line(tmp_path: Path) -> None:
    up = Up(tmp_path / "state")
    try:
        await up.wait_for("Running.", 180)
        port = urlsplit(up.endpoints()["nats"]).port
        assert port is not None
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(up.server_pid("nats"), signal.SIGKILL)
            deadline = time.monotonic() + 5
            while True:
                try:
                    squatter.bind(("127.0.0.1", port))
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.02)
            squatter.listen()
            status = await asyncio.to_thread(up.proc.wait, 120)
    finally:
        await up.stop()
    output = up.output
    assert status == 1, output
    last = [line for line in output.splitlines() if line.strip()][-1]
    assert last.startswith("gxwf: the embedded stack failed: nats could not be brought back: nats: one of its ports"), (
        output
    )
    assert str(port) in last, output
    no_traceback(output)
