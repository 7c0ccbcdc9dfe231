"""The dashboard as a running service: its connections to NATS, MongoDB and S3, and its HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import structlog
import uvicorn
from nats.aio.client import Client

from adapters.mongo_store import MongoStateStore
from adapters.s3_objects import S3ObjectStore
from dashboard.app import Dashboard, create_app
from dashboard.auth import Tokens
from dashboard.tail import RING_EVENTS, TailHub
from schemas.sites import Site

log = structlog.get_logger("gxwf.dashboard")


class ListenError(Exception):
    pass


@dataclass(frozen=True)
class Servers:
    nats: str
    mongo: str
    mongo_database: str
    s3: str | None = None
    s3_bucket: str = "gxwf"
    s3_access_key: str = "gxwf"
    s3_secret_key: str = "gxwf-secret"  # noqa: S105 - the embedded store's default, as in gxwf settings
    s3_region: str = "us-east-1"
    nats_monitor: str | None = None


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1024)
    except OSError as error:
        listener.close()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    listener.set_inheritable(True)
    return listener


class DashboardService:
    def __init__(
        self,
        servers: Servers,
        tokens: Tokens,
        *,
        sites: Sequence[Site] = (),
        host: str = "127.0.0.1",
        port: int = 8500,
        max_clients: int = 200,
        runs_dir: Path | None = None,
        ring_events: int = RING_EVENTS,
        runs_per_site: int | None = None,
    ) -> None:
        self.servers = servers
        self.tokens = tokens
        self.sites = tuple(sites)
        self.host, self.port = host, port
        self.max_clients = max_clients
        self.runs_dir = runs_dir
        self.ring_events = ring_events
        self.runs_per_site = runs_per_site
        self.nc: Client | None = None
        self.store = MongoStateStore.connect(servers.mongo, servers.mongo_database)
        self.objects = (
            S3ObjectStore(
                servers.s3,
                servers.s3_bucket,
                access_key=servers.s3_access_key,
                secret_key=servers.s3_secret_key,
                region=servers.s3_region,
            )
            if servers.s3
            else None
        )
        self.hub: TailHub | None = None
        self.dashboard: Dashboard | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url: str | None = None

    async def start(self) -> str:
        listener = listen(self.host, self.port)
        self.nc = await nats.connect(
            self.servers.nats, name="gxwf-dashboard", connect_timeout=5, max_reconnect_attempts=-1
        )
        js = self.nc.jetstream()
        self.hub = TailHub(self.nc, js, max_clients=self.max_clients, ring_events=self.ring_events)
        await self.hub.start()
        self.dashboard = Dashboard(
            tokens=self.tokens,
            nc=self.nc,
            js=js,
            store=self.store,
            objects=self.objects,
            bucket=self.servers.s3_bucket,
            sites=self.sites,
            hub=self.hub,
            monitor_url=self.servers.nats_monitor,
            runs_dir=self.runs_dir,
            runs_per_site=self.runs_per_site,
        )
        config = uvicorn.Config(
            create_app(self.dashboard),
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=3,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[listener]), name="dashboard")
        while not server.started:
            if task.done():
                await self.nc.close()
                task.result()
                raise ListenError(f"the dashboard on {self.host}:{self.port} stopped while starting")
            await asyncio.sleep(0.01)
        port = listener.getsockname()[1]
        self._server, self._task = server, task
        self.url = f"http://{self.host}:{port}"
        log.info("dashboard listening", url=self.url)
        return self.url

    async def stop(self) -> None:
        if self.hub is not None:
            # Open tails end first, or the server would wait for them until its graceful timeout.
            await self.hub.stop()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await self._task
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        await self.store.close()
        if self.objects is not None:
            await self.objects.close()
