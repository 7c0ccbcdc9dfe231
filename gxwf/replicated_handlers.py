"""`gxwf up --replicas N`: the handlers as N processes of `gxwf handlers run` beside the HTTP services.

The replicas find what `gxwf up` started the way any `gxwf handlers run` does: the servers (with the handlers'
own NATS user) in STATE_DIR/endpoints.json, written before they start; the connectors from the settings and the
API key kept in the state directory; the demo connector's management API from the simulator registration
(adapters/management_registration.py). What `gxwf up` decided at start (the WorkflowApi's port, the sites file
with the local Slurm site, the tenant gateway) goes to them as GXWF_* variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

import typer

from adapters.management_registration import register, unregister
from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from devstack.restarts import RestartPolicy
from events.bus import Bus
from gxwf.endpoints import Endpoints, write_endpoints
from gxwf.replicas import ReplicaSet, ReplicasFailed, pids_file, replica_command
from gxwf.settings import Settings
from schemas.connectors import ManagementApi


@dataclass(frozen=True)
class ReplicatedHandlers:
    """What the rest of `gxwf up` (the shipped assets, the demo) uses of the handlers: their servers' clients."""

    replicas: ReplicaSet
    bus: Bus
    store: MongoStateStore
    assets: MongoAssetCatalogue
    site: str


async def start_replicated(
    services: contextlib.AsyncExitStack,
    settings: Settings,
    endpoints: Endpoints,
    written: dict[str, Any],
    count: int,
    *,
    management: ManagementApi | None = None,
) -> ReplicatedHandlers:
    """Start `count` handler replicas; each stop goes onto `services`."""
    write_endpoints(settings.state_dir, written)
    if management is not None:
        register(settings.state_dir, management)
        services.callback(unregister, settings.state_dir, management)
    env = {"GXWF_WORKFLOW_API_URL": settings.workflow_api_url}
    if settings.sites_file is not None:
        env["GXWF_SITES_FILE"] = str(settings.sites_file)
    if settings.tenant_gateway_url is not None:
        env["GXWF_TENANT_GATEWAY_URL"] = settings.tenant_gateway_url
    replicas = ReplicaSet(
        count,
        replica_command(["handlers", "run", "--state-dir", str(settings.state_dir)]),
        pids_path=pids_file(settings.state_dir, None),
        env=env,
        policy=RestartPolicy(
            limit=settings.replica_restart_limit, window_seconds=settings.replica_restart_window_seconds
        ),
    )
    services.push_async_callback(replicas.stop)
    try:
        await replicas.start()
    except ReplicasFailed as failed:
        # Everything started so far is stopped as the exit unwinds; not bad input: exit 1.
        print(f"gxwf: error: {failed}", file=sys.stderr, flush=True)
        raise typer.Exit(1) from None
    watcher = asyncio.ensure_future(_stop_when_given_up(replicas))
    services.callback(watcher.cancel)
    store = MongoStateStore.connect(endpoints.mongo, settings.mongo_database)
    services.push_async_callback(store.close)
    bus = Bus(endpoints.nats, name="gxwf-up")
    await bus.broker.connect()
    services.push_async_callback(bus.broker.stop)
    return ReplicatedHandlers(replicas, bus, store, MongoAssetCatalogue(store.db), settings.compute_site or "local")


async def _stop_when_given_up(replicas: ReplicaSet) -> None:
    """A replica the restart policy gave up on stops `gxwf up` as a signal would, after one line saying why."""
    reason = await replicas.wait_failed()
    print(f"gxwf: {reason}; stopping everything", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
