"""The dashboard as a running service: its connections to NATS, MongoDB and S3, and its HTTP server."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nats
import structlog
from nats.aio.client import Client

from adapters.jetstream_logs import JetStreamLogReader
from adapters.mongo_queries import MongoOpsQueries
from adapters.mongo_store import MongoStateStore
from adapters.s3_objects import S3ObjectStore
from dashboard.access import LoginThrottle
from dashboard.app import Dashboard, create_app
from dashboard.auth import Sessions, Tokens
from dashboard.tail import RING_EVENTS, TailHub
from events.permissions import connect_options
from events.reconnect import reconnecting
from http_serving.server import ListenError, Served
from schemas.sites import Site

log = structlog.get_logger("gxwf.dashboard")
__all__ = ["DashboardService", "ListenError", "Servers"]


@dataclass(frozen=True)
class Servers:
    nats: str
    mongo: str
    mongo_database: str
    s3: str | None = None
    s3_bucket: str = "gxwf"
    # None: the S3 client's usual places (its environment variables, ~/.aws).
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    nats_monitor: str | None = None


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
        session_seconds: float = 12 * 3600,
        login_failures_per_address: float = 10,
        login_failures_total: float = 100,
    ) -> None:
        self.servers = servers
        self.tokens = tokens
        self.sites = tuple(sites)
        self.host, self.port = host, port
        self.max_clients = max_clients
        self.runs_dir = runs_dir
        self.ring_events = ring_events
        self.runs_per_site = runs_per_site
        self.sessions = Sessions(session_seconds)
        self.logins = LoginThrottle(login_failures_per_address, login_failures_total)
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
        # Open tails get 3 s to end at a stop, not uvicorn's wait for every connection.
        self._served = Served("dashboard", self.host, self.port, timeout_graceful_shutdown=3)
        self.url: str | None = None

    async def start(self) -> str:
        listener = self._served.bind()
        self.nc = await nats.connect(
            self.servers.nats,
            name="gxwf-dashboard",
            connect_timeout=5,
            **connect_options(self.servers.nats),
            **reconnecting("dashboard"),
        )
        js = self.nc.jetstream()
        self.hub = TailHub(self.nc, js, max_clients=self.max_clients, ring_events=self.ring_events)
        await self.hub.start()
        self.dashboard = Dashboard(
            tokens=self.tokens,
            nc=self.nc,
            js=js,
            queries=MongoOpsQueries(self.store),
            objects=self.objects,
            bucket=self.servers.s3_bucket,
            sites=self.sites,
            hub=self.hub,
            logs=JetStreamLogReader(js),
            monitor_url=self.servers.nats_monitor,
            runs_dir=self.runs_dir,
            runs_per_site=self.runs_per_site,
            sessions=self.sessions,
            logins=self.logins,
        )
        try:
            self.url = await self._served.start(create_app(self.dashboard), listener)
        except ListenError:
            await self.nc.close()
            raise
        log.info("dashboard listening", url=self.url)
        return self.url

    async def stop(self) -> None:
        if self.hub is not None:
            # Open tails end first, or the server would wait for them until its graceful timeout.
            await self.hub.stop()
        await self._served.stop()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.close()
        await self.store.close()
        if self.objects is not None:
            await self.objects.close()
