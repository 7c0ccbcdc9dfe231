"""Seeded faults, one at a time, while the workload runs; each recorded with when it was injected, what it hit,
and how long until the system recovered: the faulted thing ready again and a run completed after that (when
runs were still outstanding).

A kind is a coroutine over what the chaos run started: the handler replicas (kill, pause) and the servers
(`StackServers`: one NATS node killed, the store and the object store restarted)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import structlog

from gxwf.chaos.processes import ReplicaSet
from gxwf.chaos.servers import StackServers

log = structlog.get_logger("gxwf.chaos")

REPLICA_KILL = "replica_kill"
REPLICA_PAUSE = "replica_pause"
NATS_KILL = "nats_kill"
STORE_RESTART = "store_restart"
S3_RESTART = "s3_restart"
KINDS = (REPLICA_KILL, REPLICA_PAUSE, NATS_KILL, STORE_RESTART, S3_RESTART)
_SERVER_ROLE = {NATS_KILL: "nats", STORE_RESTART: "mongo", S3_RESTART: "s3"}


@dataclass
class FaultRecord:
    kind: str
    target: str
    at_seconds: float  # since the chaos run began
    back_seconds: float | None  # until the faulted thing was ready again
    recovery_seconds: float | None  # until a run completed after that (the system doing work again)
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Progress:
    """Watches run completions (runs in a terminal state) from the outside, to time recovery by."""

    def __init__(self, count: Callable[[], Awaitable[int]], interval: float = 0.5) -> None:
        self._count = count
        self.interval = interval
        self.completed = 0
        self.changed_at = time.monotonic()
        self.expected = 0  # runs accepted so far: while fewer completed, work is outstanding

    @property
    def outstanding(self) -> bool:
        return self.completed < self.expected

    async def run(self) -> None:
        while True:
            try:
                now = await self._count()
            except Exception as error:  # the store may be the thing restarting: keep watching
                log.debug("progress not readable", error=str(error))
            else:
                if now != self.completed:
                    self.completed, self.changed_at = now, time.monotonic()
            await asyncio.sleep(self.interval)

    async def resumed_after(self, moment: float, timeout: float) -> float | None:
        """When a completion was seen after `moment` (or `moment` when nothing was outstanding); None: not within
        `timeout` seconds."""
        deadline = moment + timeout
        while time.monotonic() < deadline:
            if self.changed_at > moment or not self.outstanding:
                return max(self.changed_at, moment) if self.changed_at > moment else moment
            await asyncio.sleep(0.1)
        return None


class Injector:
    def __init__(
        self,
        rng: random.Random,
        replicas: ReplicaSet,
        servers: StackServers,
        progress: Progress,
        *,
        pause_seconds: float,
        began: float,
        kinds: tuple[str, ...] = KINDS,
        recovery_timeout: float = 120.0,
    ) -> None:
        self.rng = rng
        self.replicas = replicas
        self.servers = servers
        self.progress = progress
        self.pause_seconds = pause_seconds
        self.began = began
        self.recovery_timeout = recovery_timeout
        self.kinds = tuple(
            k for k in kinds if (k in (REPLICA_KILL, REPLICA_PAUSE) and replicas.replicas) or self._roles(k)
        )
        self.records: list[FaultRecord] = []
        self._deck: list[str] = []

    def _roles(self, kind: str) -> list[str]:
        """The servers a kind of fault may hit: any one NATS node of a cluster, the store, the object store."""
        wanted = _SERVER_ROLE.get(kind)
        if wanted is None:
            return []
        return [r for r in self.servers.roles() if r == wanted or (wanted == "nats" and r.startswith("nats-"))]

    def next_kind(self) -> str:
        """Every kind once in a shuffled round before any repeats: a short run still meets each of them."""
        if not self._deck:
            self._deck = list(self.kinds)
            self.rng.shuffle(self._deck)
        return self._deck.pop()

    async def inject(self, kind: str) -> FaultRecord:
        injected = time.monotonic()
        target, detail = "", ""
        back: float | None = None
        try:
            if kind in (REPLICA_KILL, REPLICA_PAUSE):
                replica = self.rng.choice(self.replicas.replicas)
                target = f"{replica.name} (pid {replica.pid})"
                if kind == REPLICA_KILL:
                    back = await self.replicas.kill_and_restart(replica)
                else:
                    back = await self.replicas.pause(replica, self.pause_seconds)
                    detail = f"SIGSTOP for {self.pause_seconds:g}s"
            else:
                role = self.rng.choice(self._roles(kind))
                target = f"{role} (pid {self.servers.pid(role)})"
                kill = kind == NATS_KILL
                back = await self.servers.restart(role, kill=kill)
                detail = "SIGKILL, started again on its ports and data" if kill else "stopped and started again"
        except Exception as error:
            detail = f"{detail}; did not come back: {error}".lstrip("; ")
            log.warning("fault: did not recover", kind=kind, target=target, error=str(error))
        recovered: float | None = None
        if back is not None:
            resumed = await self.progress.resumed_after(injected + back, self.recovery_timeout)
            recovered = None if resumed is None else resumed - injected
        record = FaultRecord(kind, target, round(injected - self.began, 2), _round(back), _round(recovered), detail)
        self.records.append(record)
        log.info("fault injected", **record.as_json())
        return record

    async def loop(self, count: int | None, interval: float, finished: Callable[[], bool]) -> None:
        """`count` faults (None: until `finished`), one at a time, the next after a seeded pause around
        `interval` seconds."""
        while self.kinds and (count is None or len(self.records) < count):
            await asyncio.sleep(self.rng.uniform(0.5 * interval, 1.5 * interval))
            if count is None and finished():
                return
            await self.inject(self.next_kind())


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
