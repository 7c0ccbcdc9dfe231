"""Handler replicas as processes: N copies of one `gxwf handlers run`, each its own OS process sharing the durable
consumers (JetStream hands each event to one of them), kept alive by the parent.

The parent starts the replicas, restarts one that dies (with a backoff, up to a limit within a window), forwards
SIGTERM/SIGINT for a clean stop, and keeps the replicas' pids in a file in the state directory, rewritten on every
change, so an operator or `gxwf chaos` can kill or pause one replica alone:

    {"parent": 4100, "replicas": [{"replica": 0, "pid": 4102, "health_port": 9300, "restarts": 0,
                                   "started_at": "2026-12-03T13:00:00+00:00"}, ...]}

A replica knows its number from GXWF_REPLICA (the `replica` label of its metrics and its `replica_stats` record).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog

from devstack.process import death_signal_setter, describe_exit
from devstack.restarts import RestartBudget, RestartPolicy

log = structlog.get_logger("gxwf.replicas")

REPLICA_ENV = "GXWF_REPLICA"
MAX_REPLICAS = 16
READY_LINE = "handlers ready"


def replica_label() -> str:
    """This process's replica number as its parent set it; "0" for a process started alone."""
    return os.environ.get(REPLICA_ENV, "0")


def pids_file(state_dir: Path, groups: Sequence[str] | None) -> Path:
    """Where the parent of these replicas keeps their pids: one file per set of handler groups."""
    suffix = "" if not groups else "-" + "+".join(sorted(groups))
    return state_dir / f"handlers-replicas{suffix}.json"


class ReplicasFailed(Exception):
    """A replica died more often than the restart policy allows; the message says which and how."""


@dataclass
class _Replica:
    index: int
    health_port: int | None
    budget: RestartBudget
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_wall: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class ReplicaSet:
    """`count` replicas of `command` (argv without the health port: `health_args(port)` adds it per replica)."""

    def __init__(
        self,
        count: int,
        command: Sequence[str],
        *,
        pids_path: Path,
        health_port: int | None = None,
        health_args: Callable[[int], list[str]] = lambda port: ["--health-port", str(port)],
        env: dict[str, str] | None = None,
        policy: RestartPolicy | None = None,
        stop_seconds: float = 30.0,
    ) -> None:
        self.command = list(command)
        self.pids_path = pids_path
        self.health_args = health_args
        self.env = env
        self.policy = policy or RestartPolicy()
        self.stop_seconds = stop_seconds
        self.replicas = [
            _Replica(index, health_port + index if health_port is not None else None, RestartBudget(self.policy))
            for index in range(count)
        ]
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []
        self.failed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def start(self) -> None:
        """Start every replica; returns once each has said it is ready (or raises ReplicasFailed)."""
        for replica in self.replicas:
            await self._spawn(replica)
            self._watchers.append(asyncio.create_task(self._watch(replica), name=f"replica-{replica.index}"))
        ready = asyncio.ensure_future(self._all_ready())
        failed = asyncio.ensure_future(self.wait_failed())
        await asyncio.wait({ready, failed}, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        failed.cancel()
        if self.failed.done():
            raise ReplicasFailed(self.failed.result())

    async def _all_ready(self) -> None:
        for replica in self.replicas:
            await replica.ready.wait()

    async def wait_failed(self) -> str:
        """Until the restart policy gave up on a replica: why."""
        return await asyncio.shield(self.failed)

    def pids(self) -> list[int]:
        return [replica.process.pid for replica in self.replicas if replica.process is not None]

    async def stop(self) -> None:
        """SIGTERM to every replica, SIGKILL to those still there after `stop_seconds`."""
        self._stopping = True
        running = [r.process for r in self.replicas if r.process is not None and r.process.returncode is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
                # A paused replica (SIGSTOP) would never see its SIGTERM.
                process.send_signal(signal.SIGCONT)
        if running:
            _, late = await asyncio.wait(
                [asyncio.create_task(process.wait()) for process in running], timeout=self.stop_seconds
            )
            for process in running:
                if process.returncode is None:
                    log.warning("replica did not stop in time; killed", pid=process.pid, seconds=self.stop_seconds)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
            if late:
                await asyncio.wait(late, timeout=5)
        for watcher in self._watchers:
            watcher.cancel()
        for watcher in self._watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        self.pids_path.unlink(missing_ok=True)

    async def _spawn(self, replica: _Replica) -> None:
        argv = self.command + (self.health_args(replica.health_port) if replica.health_port is not None else [])
        env = {**os.environ, **(self.env or {}), REPLICA_ENV: str(replica.index)}
        replica.ready.clear()
        # Its own session: a Ctrl-C in the terminal reaches the parent alone, which stops the replicas in order;
        # the death signal ends a replica whose parent was killed outright.
        replica.process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=death_signal_setter(signal.SIGTERM),
        )
        replica.started_wall = datetime.now(UTC).isoformat()
        self._write_pids()
        log.info("replica started", replica=replica.index, pid=replica.process.pid, health_port=replica.health_port)

    async def _watch(self, replica: _Replica) -> None:
        while True:
            process = replica.process
            assert process is not None
            await self._relay(replica, process)
            code = await process.wait()
            if self._stopping:
                return
            delay = replica.budget.next_delay(time.monotonic())
            if delay is None:
                reason = (
                    f"handler replica {replica.index} {describe_exit(code)}; restarted {self.policy.limit} times "
                    f"within {self.policy.window_seconds:g}s, not again"
                )
                if not self.failed.done():
                    self.failed.set_result(reason)
                return
            log.warning(
                "replica died; restarting it",
                replica=replica.index,
                pid=process.pid,
                exit=describe_exit(code),
                after_seconds=delay,
            )
            await asyncio.sleep(delay)
            if self._stopping:
                return
            replica.restarts += 1
            await self._spawn(replica)

    async def _relay(self, replica: _Replica, process: asyncio.subprocess.Process) -> None:
        """The replica's standard output, line by line, to ours; its ready line marks it ready."""
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(READY_LINE):
                replica.ready.set()
                replica.budget.succeeded()  # its next death starts again from the first delay
                continue
            print(f"[replica {replica.index}] {line}", flush=True)

    def _write_pids(self) -> None:
        record = {
            "parent": os.getpid(),
            "replicas": [
                {
                    "replica": replica.index,
                    "pid": replica.process.pid if replica.process is not None else None,
                    "health_port": replica.health_port,
                    "restarts": replica.restarts,
                    "started_at": replica.started_wall,
                }
                for replica in self.replicas
            ],
        }
        self.pids_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.pids_path.with_name(f".{self.pids_path.name}.{secrets.token_hex(4)}")
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.replace(self.pids_path)


def replica_command(args: Sequence[str]) -> list[str]:
    """This installation's CLI with `args`, as a replica process runs it."""
    return [sys.executable, "-m", "gxwf", *args]
