"""The WorkflowApi as a running service: NATS, MongoDB and S3 connections (or, for one consumer's deployment on a
Kubernetes site, the tenant gateway instead), the HTTP server, readiness."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
import structlog
from nats.aio.client import Client

from adapters.jetstream_logs import JetStreamLogReader
from adapters.jetstream_sink import JetStreamSink
from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_leases import MongoLeases
from adapters.mongo_queries import MongoConsumerQueries, MongoConsumerRecords
from adapters.mongo_store import MongoStateStore
from adapters.s3_objects import S3ObjectStore
from adapters.servers import Servers
from adapters.tenant_gateway_client import (
    GatewayCatalogue,
    GatewayEvents,
    GatewayLeases,
    GatewayLogs,
    GatewayObjects,
    GatewayQueries,
    GatewayRecords,
    GatewayStore,
    TenantGateway,
)
from events.permissions import connect_options
from events.reconnect import reconnecting
from http_serving.server import ListenError, Served
from ports.events import EventSink
from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import ConsumerQueries
from ports.records import ConsumerRecords
from workflow_api.app import create_app
from workflow_api.context import ApiContext, ApiStore, AssetVersions, LeaseHolder
from workflow_api.follows import FollowSlots
from workflow_api.principals import PrincipalCache
from workflow_api.settings import WorkflowApiSettings

log = structlog.get_logger("gxwf.workflow_api")


class ServiceError(Exception):
    """The service cannot start as configured; the message names what to fix."""


@dataclass(frozen=True)
class Gateway:
    """A per-consumer deployment's only access to its consumer's data: the tenant gateway and its token."""

    url: str
    token: str


class WorkflowApiService:
    def __init__(
        self,
        servers: Servers | Gateway,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8490,
        settings: WorkflowApiSettings | None = None,
    ) -> None:
        self.servers = servers
        self.settings = settings or WorkflowApiSettings()
        self.host = host
        self.port = port
        self.state_dir = state_dir
        self.store: MongoStateStore | None = None
        self.objects: S3ObjectStore | None = None
        self.gateway: TenantGateway | None = None
        if isinstance(servers, Gateway):
            self.gateway = TenantGateway(servers.url, servers.token)
        else:
            self.store = MongoStateStore.connect(servers.mongo, servers.mongo_database)
            self.objects = S3ObjectStore.of(servers)
        self.nc: Client | None = None
        self._served = Served("workflow-api", self.host, self.port)
        self.url: str | None = None
        # Who this process is among the WorkflowApi replicas, for leases.
        self.holder = f"workflow-api:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    async def readiness(self) -> dict[str, str]:
        if self.gateway is not None:
            return {"tenant-gateway": await self.gateway.health()}
        assert self.store is not None
        checks = {"nats": "ok" if self.nc is not None and self.nc.is_connected else "disconnected"}
        checks["mongo"] = await self.store.health()
        if self.objects is not None:
            checks["s3"] = await self.objects.health()
        return checks

    def _context(
        self,
        *,
        store: ApiStore,
        queries: ConsumerQueries,
        records: ConsumerRecords,
        objects: ObjectStore,
        events: EventSink,
        catalogue: AssetVersions,
        leases: LeaseHolder,
        logs: LogReader,
    ) -> ApiContext:
        # Typed port by port, so that an adapter (the gateway's or the servers') that falls behind a port is a type
        # error, not a TypeError on the first request that uses it.
        return ApiContext(
            store=store,
            queries=queries,
            records=records,
            objects=objects,
            events=events,
            catalogue=catalogue,
            leases=leases,
            logs=logs,
            settings=self.settings,
            runs_dir=self.state_dir / "runs",
            scratch_dir=self.state_dir / "workflow-api" / "scratch",
            holder=self.holder,
            principals=PrincipalCache(self.settings.workflow_api_auth_cache_seconds),
            follows=FollowSlots(self.settings.workflow_api_log_follows_per_consumer),
        )

    async def _gateway_context(self, gateway: TenantGateway) -> ApiContext:
        return self._context(
            store=GatewayStore(gateway),
            queries=GatewayQueries(gateway),
            records=GatewayRecords(gateway),
            objects=GatewayObjects(gateway),
            events=GatewayEvents(gateway),
            catalogue=GatewayCatalogue(gateway),
            leases=GatewayLeases(gateway),
            logs=GatewayLogs(gateway),
        )

    async def _servers_context(self, servers: Servers) -> ApiContext:
        assert self.store is not None and self.objects is not None
        queries = MongoConsumerQueries(self.store)
        await queries.ensure_indexes()
        await self.store.ensure_indexes()
        await self.objects.ensure_bucket()
        # Reconnect for ever: while NATS is away starts and stops answer 503 and /readyz says so.
        self.nc = await nats.connect(
            servers.nats,
            name="gxwf-workflow-api",
            connect_timeout=5,
            **connect_options(servers.nats),
            **reconnecting("workflow-api"),
        )
        return self._context(
            store=self.store,
            queries=queries,
            records=MongoConsumerRecords(self.store),
            objects=self.objects,
            events=JetStreamSink(self.nc, timeout=self.settings.workflow_api_publish_timeout_seconds),
            catalogue=MongoAssetCatalogue(self.store.db),
            leases=MongoLeases(self.store.db),
            logs=JetStreamLogReader(self.nc.jetstream()),
        )

    async def start(self) -> str:
        if isinstance(self.servers, Gateway):
            assert self.gateway is not None
            context = await self._gateway_context(self.gateway)
        else:
            context = await self._servers_context(self.servers)
        try:
            self.url = await self._served.start(create_app(context, self.readiness))
        except ListenError as error:
            if self.nc is not None:
                await self.nc.close()
            raise ServiceError(str(error)) from None
        log.info("workflow api listening", url=self.url, through="tenant gateway" if self.gateway else "servers")
        return self.url

    async def stop(self) -> None:
        await self._served.stop()
        if self.nc is not None:
            await self.nc.close()
        if self.store is not None:
            await self.store.close()
        if self.objects is not None:
            await self.objects.close()
        if self.gateway is not None:
            await self.gateway.close()
