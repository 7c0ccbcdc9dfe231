"""The services of a chaos run as OS processes of their own (`gxwf edc-ingress`, `gxwf workflow-api`, `gxwf
handlers run`), each logging to DIR/logs/<name>.log, stopped by pid; a replica can be killed, paused and
started again as a replica set would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from devstack.netports import reserve_ports
from devstack.process import death_signal_setter

_POLL = 0.1


class ServiceFailed(Exception):
    """A service process did not come up: which, and the tail of its log."""


class ServiceProcess:
    """One `gxwf ...` command as a child process that stops when this process dies (SIGTERM as death signal)."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path, ready: str) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.ready = ready
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._offset = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self, timeout: float) -> float:
        """Start it and wait for its ready line; the seconds that took."""
        began = time.monotonic()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"--- chaos {time.strftime('%H:%M:%S')}: start {self.starts + 1}\n".encode())
            log.flush()
            self._offset = log.tell()
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                # Its own group: a Ctrl-C in the terminal reaches the chaos run only, which stops everything.
                process_group=0,
                preexec_fn=death_signal_setter(signal.SIGTERM),
            )
        self.starts += 1
        await self.wait_ready(timeout)
        return time.monotonic() - began

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.ready in self.output():
                return
            if self._process is None or self._process.returncode is not None:
                raise ServiceFailed(f"{self.name} exited during start-up: {self.tail()}")
            if time.monotonic() > deadline:
                raise ServiceFailed(f"{self.name} not ready within {timeout:g}s: {self.tail()}")
            await asyncio.sleep(_POLL)

    def output(self) -> str:
        """What this start has logged so far."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 3) -> str:
        said = [line.strip() for line in self.output().splitlines() if line.strip()]
        return " | ".join(said[-lines:])[-600:] or f"nothing logged (see {self.log_path})"

    def send(self, sig: signal.Signals) -> None:
        if self.running and self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    async def kill(self) -> None:
        """SIGKILL to the process alone: what a crash or an OOM kill does."""
        self.send(signal.SIGKILL)
        if self._process is not None:
            await self._process.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM (after SIGCONT, should it be paused), then SIGKILL after `grace` seconds."""
        if self._process is None or self._process.returncode is not None:
            return
        self.send(signal.SIGCONT)
        self.send(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._process.wait(), grace)
        except TimeoutError:
            self.send(signal.SIGKILL)
            await self._process.wait()


def gxwf_argv(*args: str) -> list[str]:
    """This installation's CLI, whatever the PATH says."""
    return [sys.executable, "-m", "gxwf", *args]


class Replica(ServiceProcess):
    """One `gxwf handlers run` process, with its health port for /metrics (the events it handled)."""

    def __init__(self, index: int, state_dir: Path, env: Mapping[str, str], log_dir: Path) -> None:
        self.index = index
        self.health_port = reserve_ports(1)[0]
        argv = gxwf_argv("handlers", "run", "--state-dir", str(state_dir), "--health-port", str(self.health_port))
        # Its number as a replicas parent would give it: the `replica` label of its figures.
        super().__init__(f"handlers-{index}", argv, {**env, "GXWF_REPLICA": str(index)}, log_dir, "handlers ready")
        # Events handled, summed over the incarnations this replica had (a restart starts its counters at 0).
        self.handled_before = 0
        self.handled_now = 0

    async def scrape(self, client: httpx.AsyncClient) -> None:
        """The events this incarnation has handled so far (a paused or dead one keeps its last figure)."""
        if not self.running:
            return
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get(f"http://127.0.0.1:{self.health_port}/metrics", timeout=2)
            self.handled_now = handled_total(response.text)

    def restarted(self) -> None:
        self.handled_before += self.handled_now
        self.handled_now = 0

    @property
    def handled(self) -> int:
        return self.handled_before + self.handled_now


def handled_total(metrics: str) -> int:
    """The events handled successfully, from a Prometheus text exposition."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("gxwf_events_handled_total{") and 'outcome="ok"' in line:
            with contextlib.suppress(ValueError):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


class ReplicaSet:
    """N handler processes sharing the durable consumers; a killed one is started again, as a replica set would."""

    def __init__(self, count: int, state_dir: Path, env: Mapping[str, str], log_dir: Path, ready_timeout: float):
        self.replicas = [Replica(i, state_dir, env, log_dir) for i in range(count)]
        self.ready_timeout = ready_timeout

    async def start(self) -> None:
        # One after the other: the first creates the durable consumers the others then share.
        for replica in self.replicas:
            await replica.start(self.ready_timeout)

    async def kill_and_restart(self, replica: Replica) -> float:
        """SIGKILL, then start again; the seconds from the kill until it is ready."""
        began = time.monotonic()
        await replica.kill()
        replica.restarted()
        await replica.start(self.ready_timeout)
        return time.monotonic() - began

    async def pause(self, replica: Replica, seconds: float) -> float:
        """SIGSTOP for `seconds` (a network partition as the process sees it), then SIGCONT."""
        began = time.monotonic()
        replica.send(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            replica.send(signal.SIGCONT)
        return time.monotonic() - began

    async def scrape(self, client: httpx.AsyncClient) -> None:
        await asyncio.gather(*(replica.scrape(client) for replica in self.replicas))

    async def stop(self) -> None:
        await asyncio.gather(*(replica.stop() for replica in self.replicas))

    def work(self) -> dict[str, int]:
        return {replica.name: replica.handled for replica in self.replicas}
