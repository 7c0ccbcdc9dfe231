"""`gxwf bench store-crash`: how many acknowledged writes the embedded MongoDB-wire server loses on SIGKILL.

For each durability setting (a write concern in the URL, or a server flag) and each trial: start secantusd on a
fresh data directory, write run documents as the handlers do (MongoStateStore.create, then transitions) from
several writers at once, SIGKILL the server after a random number of acknowledged writes (seeded), start it
again on the same data, and count the acknowledged writes that are gone: a created document missing, or a
transition whose history entry is not there. Writes in flight at the kill were never acknowledged and are
not counted.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGKILL

from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from adapters.mongo_store import MongoStateStore
from devstack import probes
from devstack.binaries import find_binary
from devstack.netports import LOOPBACK, reserve_ports
from devstack.process import ServerProcess
from devstack.servers import SecantusServer
from schemas.run import RunDocument, RunState

DATABASE = "crash"
WRITERS = 8
# What one run's life writes: its creation, then queued -> pending -> running -> succeeded.
STEPS = (RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED)


@dataclass(frozen=True)
class Durability:
    """One way of asking for durable writes: options added to the client's URL, flags added to the server's."""

    name: str
    url_options: str = ""
    server_flags: tuple[str, ...] = ()


SETTINGS: dict[str, Durability] = {
    d.name: d
    for d in (
        Durability("w=1"),
        Durability("w=majority", url_options="w=majority"),
        Durability("journal=true", url_options="journal=true"),
        Durability("sync-on-commit", server_flags=("--sync-on-commit",)),
        # What `gxwf up` and `gxwf stack up` start.
        Durability("embedded default", server_flags=SecantusServer.durability_flags),
    )
}


@dataclass
class Trial:
    acknowledged: int = 0
    lost: int = 0
    writes_per_second: float = 0.0
    lost_examples: list[str] = field(default_factory=list)


@dataclass
class Figures:
    setting: str
    trials: list[Trial]

    @property
    def acknowledged(self) -> int:
        return sum(t.acknowledged for t in self.trials)

    @property
    def lost(self) -> int:
        return sum(t.lost for t in self.trials)

    @property
    def worst(self) -> int:
        return max((t.lost for t in self.trials), default=0)

    @property
    def writes_per_second(self) -> float:
        rates = [t.writes_per_second for t in self.trials if t.writes_per_second > 0]
        return sum(rates) / len(rates) if rates else 0.0


class StoreProcess:
    """secantusd on one data directory, without users (the measurement is about storage, not access); started
    again after a kill on the same port and data, as a supervisor would."""

    def __init__(self, home: Path, durability: Durability) -> None:
        self.home = home
        self.durability = durability
        self.process: ServerProcess | None = None
        self.port = 0

    @property
    def url(self) -> str:
        options = "directConnection=true"
        if self.durability.url_options:
            options += "&" + self.durability.url_options
        return f"mongodb://{LOOPBACK}:{self.port}/?{options}"

    async def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "secantusd.toml").touch()
        if not self.port:
            (self.port,) = reserve_ports(1)
        argv = [
            *SecantusServer.command(find_binary(SecantusServer.program), self.home, self.port),
            *self.durability.server_flags,
        ]
        self.process = await ServerProcess.spawn(
            "secantusd", argv, cwd=self.home, log_path=self.home / "secantusd.log", death_signal=SIGKILL
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (reason := await probes.mongo_ping(self.url)) is not None:
            if self.process.returncode is not None or loop.time() > deadline:
                raise RuntimeError(f"secantusd did not become ready: {self.process.log_summary()} ({reason})")
            await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()


async def crash_trial(home: Path, durability: Durability, *, kill_after: int, writers: int = WRITERS) -> Trial:
    """Write until `kill_after` writes are acknowledged, SIGKILL the server, restart it, count what is gone."""
    server = StoreProcess(home, durability)
    await server.start()
    # A short server selection: the client's close after the kill would otherwise wait for the server 10 s.
    store = MongoStateStore(AsyncMongoClient(server.url, tz_aware=True, serverSelectionTimeoutMS=500), DATABASE)
    created: set[str] = set()
    applied: dict[str, list[str]] = {}
    acknowledged = 0
    done = asyncio.Event()
    started = time.perf_counter()

    def count() -> None:
        nonlocal acknowledged
        acknowledged += 1
        if acknowledged >= kill_after:
            done.set()

    async def writer(number: int) -> None:
        serial = 0
        while not done.is_set():
            serial += 1
            run_id = f"w{number}-{serial}"
            run = RunDocument(id=run_id, state=RunState.QUEUED, consumer_id="c", asset_id="a", spec={"n": serial})
            await store.create(run, event_id=f"{run_id}:requested")
            created.add(run_id)
            count()
            for step in STEPS:
                if done.is_set():
                    return
                event_id = f"{run_id}:{step}"
                await store.transition(RunDocument, run_id, step, event_id=event_id, fields={"reason": step})
                applied.setdefault(run_id, []).append(event_id)
                count()

    tasks = [asyncio.create_task(writer(n)) for n in range(writers)]
    await done.wait()
    seconds = time.perf_counter() - started
    await server.kill()
    # Writes in flight at the kill were never acknowledged, so they are not counted; their client would wait
    # for a server to come back, so they are cancelled.
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await store.close()

    await server.start()
    store = MongoStateStore.connect(server.url, DATABASE)
    trial = Trial(acknowledged=acknowledged, writes_per_second=acknowledged / seconds if seconds else 0.0)
    try:
        for run_id in sorted(created):
            doc = await store.get(RunDocument, run_id)
            have = {h.event_id for h in doc.history} if doc is not None else set()
            gone = [f"{run_id}:created"] if doc is None else []
            gone += [event_id for event_id in applied.get(run_id, []) if event_id not in have]
            trial.lost += len(gone)
            trial.lost_examples.extend(gone[: 3 - len(trial.lost_examples)])
    finally:
        await store.close()
        await server.kill()
    return trial


async def measure(
    settings: Sequence[str], *, trials: int, writes: int, seed: int, workdir: Path | None = None
) -> list[Figures]:
    rng = random.Random(seed)  # noqa: S311 - kill points, reproducible by seed
    root = Path(tempfile.mkdtemp(prefix="gxwf-store-crash-", dir=workdir))
    results: list[Figures] = []
    try:
        for name in settings:
            figures = Figures(name, [])
            for number in range(trials):
                home = root / f"{name}-{number}"
                kill_after = rng.randint(max(writes // 2, 1), writes)
                try:
                    figures.trials.append(await crash_trial(home, SETTINGS[name], kill_after=kill_after))
                except PyMongoError as error:
                    raise RuntimeError(f"{name}: the store failed outside the kill: {error}") from error
                shutil.rmtree(home, ignore_errors=True)
            results.append(figures)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results


def report(console: Console, results: Sequence[Figures], *, seed: int) -> None:
    table = Table(title=f"acknowledged writes lost on SIGKILL of secantusd (seed {seed})")
    for column in ("setting", "trials", "acknowledged", "lost", "worst trial", "writes/s"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for f in results:
        table.add_row(
            f.setting, str(len(f.trials)), str(f.acknowledged), str(f.lost), str(f.worst), f"{f.writes_per_second:,.0f}"
        )
    console.print(table)
    for f in results:
        console.print(
            f"store-crash setting={f.setting} trials={len(f.trials)} acknowledged={f.acknowledged} "
            f"lost={f.lost} writes_per_s={f.writes_per_second:.0f}",
            soft_wrap=True,
        )
