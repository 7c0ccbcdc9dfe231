"""One chaos run: the servers (in DIR), the services as processes of their own, a simulated connector, the
workload and the faults at once, then quiescence, the checks and the report. Everything it started it stops, by
pid, whatever happens; the run is bounded by its timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import structlog

from adapters.management_registration import register, unregister
from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from devstack import EmbeddedStack
from devstack.netports import reserve_ports
from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import version
from events.permissions import connect_options
from events.subjects import STREAM
from gxwf.chaos.checks import Checker
from gxwf.chaos.faults import KINDS, Injector, Progress
from gxwf.chaos.processes import ReplicaSet, ServiceProcess, gxwf_argv
from gxwf.chaos.report import Report
from gxwf.chaos.servers import CHAOS_RESTARTS, StackServers
from gxwf.chaos.workload import Workload, register_asset
from gxwf.edc_ingress_setup import generated_api_key
from gxwf.endpoints import stack_values, write_endpoints
from gxwf.runtime import prepare_streams
from gxwf.settings import Settings
from gxwf.simulate import simulator_management
from gxwf.stack_users import nats_users
from handlers.jobs.dispatch import LEASE_SECONDS
from schemas.run import RUN_MACHINE, RunDocument

log = structlog.get_logger("gxwf.chaos")

# The servers a chaos run starts are its own: settings naming other servers are not passed to its services.
_NOT_INHERITED = ("GXWF_NATS_URL", "GXWF_MONGO_URL", "GXWF_S3_ENDPOINT", "GXWF_STATE_DIR", "GXWF_WORKFLOW_API_URL")


@dataclass(frozen=True)
class ChaosOptions:
    state_dir: Path
    seed: int
    runs: int = 1000
    consumers: int = 20
    transfers: int = 50
    faults: int | None = None  # None: one every fault_interval seconds until the runs are done
    fault_interval: float = 10.0
    nats_nodes: int = 3
    replicas: int = 2
    timeout: float = 600.0
    # Shorter than the default 30 s, so a paused replica's events move on within a fault's span.
    ack_wait_seconds: float = 8.0
    kinds: tuple[str, ...] = KINDS


async def run_chaos(options: ChaosOptions, settings: Settings) -> Report:
    began = time.monotonic()
    deadline = began + options.timeout
    state_dir = options.state_dir.absolute()
    report = Report(seed=options.seed, options=_shown(options))
    rng = random.Random(options.seed)  # noqa: S311 - reproducible faults, no secret
    markers = state_dir / "markers"
    logs = state_dir / "logs"
    durations: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        servers_stack = EmbeddedStack(
            state_dir,
            nats_users=nats_users(),
            nats_nodes=options.nats_nodes,
            restarts=CHAOS_RESTARTS,
            say=lambda line: log.info("devstack: " + line),
        )
        eps = await servers_stack.start()
        stack.push_async_callback(servers_stack.stop)
        servers = StackServers(servers_stack)
        await stack.enter_async_context(servers.supervising())
        write_endpoints(state_dir, stack_values(eps))
        await prepare_streams(eps.nats, settings)
        store = MongoStateStore.connect(eps.mongo, settings.mongo_database)
        stack.push_async_callback(store.close)
        await register_asset(MongoAssetCatalogue(store.db), state_dir, markers)

        key = generated_api_key(state_dir)
        api_port, ingress_port = reserve_ports(2)
        api_url = f"http://127.0.0.1:{api_port}"
        env = _environment(state_dir, api_url, options)
        connector = SimulatedConnector(version("0.15"), ingress_url=f"http://127.0.0.1:{ingress_port}", api_key=key)
        await connector.start()
        stack.push_async_callback(connector.stop)
        management = simulator_management(connector)
        register(state_dir, management)
        stack.callback(unregister, state_dir, management)

        ready = max(30.0, min(120.0, options.timeout / 4))
        ingress = ServiceProcess(
            "edc-ingress",
            gxwf_argv("edc-ingress", "--state-dir", str(state_dir), "--host", "127.0.0.1", "--port", str(ingress_port)),
            env,
            logs,
            "edc ingress listening on",
        )
        api = ServiceProcess(
            "workflow-api",
            gxwf_argv("workflow-api", "--state-dir", str(state_dir), "--host", "127.0.0.1", "--port", str(api_port)),
            env,
            logs,
            "workflow api listening on",
        )
        replicas = ReplicaSet(options.replicas, state_dir, env, logs, ready)
        for service in (ingress, api):
            stack.push_async_callback(service.stop)
        stack.push_async_callback(replicas.stop)
        await asyncio.gather(ingress.start(ready), api.start(ready), replicas.start())
        durations["start"] = time.monotonic() - began

        terminal = sorted(RUN_MACHINE.terminal)

        async def completed() -> int:
            return await store.count(RunDocument, states=terminal)

        progress = Progress(completed)
        injector = Injector(
            rng,
            replicas,
            servers,
            progress,
            pause_seconds=max(options.ack_wait_seconds, LEASE_SECONDS) + 2.0,
            began=began,
            kinds=options.kinds,
        )
        workload = Workload(connector, options.seed, deadline - 30)
        background = [asyncio.create_task(progress.run()), asyncio.create_task(_scrape(replicas))]
        runs_done = asyncio.Event()
        try:
            faults = asyncio.create_task(
                injector.loop(options.faults, options.fault_interval, runs_done.is_set), name="chaos-faults"
            )
            try:
                # Bounded: what has not happened by then is what the checks report.
                async with asyncio.timeout(max(1.0, deadline - 20 - time.monotonic())):
                    await _drive(workload, options, progress, store, runs_done, durations, deadline)
                    await faults
            except TimeoutError:
                workload.failed.append(f"the workload and its faults did not end within --timeout {options.timeout:g}s")
            finally:
                faults.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await faults
            quiet = time.monotonic()
            await _quiesce(eps.nats, min(deadline, time.monotonic() + 120))
            durations["quiescence"] = time.monotonic() - quiet
        finally:
            for task in background:
                task.cancel()
            async with httpx.AsyncClient() as client:
                await replicas.scrape(client)
        report.work_per_replica = replicas.work()
        report.faults = injector.records

        checked = time.monotonic()
        checker = Checker(store, eps.nats, state_dir, markers)
        await checker.runs(workload.accepted())
        await checker.transfers(workload.transfers, connector.ledger.callbacks, _access(workload), workload.requests)
        checker.leftovers()
        await checker.dead_letters()
        durations["checks"] = time.monotonic() - checked
        report.findings = checker.findings
        report.runs = len(workload.accepted())
        report.transfers = len(workload.transfers)
        report.workload_problems = workload.failed + [r for c in workload.consumers for r in c.refused]
    report.durations = durations
    report.seconds = time.monotonic() - began
    return report


async def _drive(
    workload: Workload,
    options: ChaosOptions,
    progress: Progress,
    store: MongoStateStore,
    runs_done: asyncio.Event,
    durations: dict[str, float],
    deadline: float,
) -> None:
    """Transfers provisioned; runs submitted by the first consumers while the other transfers end; the runs'
    consumers' transfers ended once their runs have."""
    began = time.monotonic()
    await workload.provision(options.transfers)
    durations["provision"] = time.monotonic() - began
    consumers = workload.pick_consumers(options.consumers)
    with_runs = {c.transfer.id for c in consumers}
    others = [t for t in workload.transfers if t.id not in with_runs]
    submitted = time.monotonic()
    submit = asyncio.create_task(workload.submit(options.runs))
    ending = asyncio.create_task(workload.deprovision(others))
    await submit
    progress.expected = len(workload.accepted())
    terminal = sorted(RUN_MACHINE.terminal)
    while time.monotonic() < deadline - 60:
        with contextlib.suppress(Exception):
            if await store.count(RunDocument, states=terminal) >= progress.expected:
                break
        await asyncio.sleep(0.5)
    runs_done.set()
    durations["runs"] = time.monotonic() - submitted
    await ending
    ended = time.monotonic()
    await workload.deprovision([c.transfer for c in consumers])
    durations["deprovision"] = time.monotonic() - ended


async def _quiesce(nats_url: str, deadline: float) -> None:
    """Until every durable consumer has nothing pending or unacknowledged twice in a row, or `deadline`."""
    calm = 0
    while time.monotonic() < deadline and calm < 2:
        calm = calm + 1 if await _bus_quiet(nats_url) else 0
        await asyncio.sleep(1.0)


async def _bus_quiet(nats_url: str) -> bool:
    try:
        nc = await nats.connect(connect_timeout=3, max_reconnect_attempts=1, **connect_options(nats_url))
    except Exception:
        return False
    try:
        infos = await nc.jetstream().consumers_info(STREAM)
        return all(not i.num_pending and not i.num_ack_pending for i in infos)
    except Exception:
        return False
    finally:
        await nc.close()


async def _scrape(replicas: ReplicaSet) -> None:
    async with httpx.AsyncClient() as client:
        while True:
            await replicas.scrape(client)
            await asyncio.sleep(2.0)


def _access(workload: Workload) -> dict[str, tuple[str, str]]:
    return {c.transfer.id: (c.url, c.token) for c in workload.consumers}


def _environment(state_dir: Path, api_url: str, options: ChaosOptions) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env.update(
        {
            "GXWF_STATE_DIR": str(state_dir),
            "GXWF_WORKFLOW_API_URL": api_url,
            # One connector sends every transfer: its requests are not the rate limit's business here.
            "GXWF_EDC_RATE_LIMIT_PER_SECOND": "0",
            "GXWF_ACK_WAIT_SECONDS": f"{options.ack_wait_seconds:g}",
        }
    )
    return env


def _shown(options: ChaosOptions) -> dict[str, Any]:
    shown = asdict(options)
    shown["state_dir"] = str(options.state_dir)
    shown["kinds"] = list(options.kinds)
    return shown
