"""The tenant gateway as a running service: the installation's NATS, MongoDB and S3 connections, the HTTP server."""

from __future__ import annotations

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
from events.permissions import connect_options
from events.reconnect import reconnecting
from http_serving.server import ListenError, Served
from tenant_gateway.app import create_app
from tenant_gateway.context import GatewayContext
from tenant_gateway.settings import TenantGatewaySettings
from tenant_gateway.tenancy import TenantCache

log = structlog.get_logger("gxwf.tenant_gateway")


class ServiceError(Exception):
    """The service cannot start as configured; the message names what to fix."""


class TenantGatewayService:
    def __init__(
        self,
        servers: Servers,
        settings: TenantGatewaySettings,
        *,
        host: str = "127.0.0.1",
        port: int = 8495,
    ) -> None:
        if settings.gateway_key is None or not settings.gateway_key.get_secret_value():
            raise ServiceError("GXWF_GATEWAY_KEY: required (the deployment handlers' key the tokens are minted with)")
        self.key = settings.gateway_key.get_secret_value()
        self.servers = servers
        self.settings = settings
        self.store = MongoStateStore.connect(servers.mongo, servers.mongo_database)
        self.objects = S3ObjectStore.of(servers)
        self.nc: Client | None = None
        self._served = Served("tenant-gateway", host, port)
        self.url: str | None = None

    async def readiness(self) -> dict[str, str]:
        checks = {"nats": "ok" if self.nc is not None and self.nc.is_connected else "disconnected"}
        checks["mongo"] = await self.store.health()
        checks["s3"] = await self.objects.health()
        return checks

    async def start(self) -> str:
        queries = MongoConsumerQueries(self.store)
        await queries.ensure_indexes()
        await self.store.ensure_indexes()
        await self.objects.ensure_bucket()
        self.nc = await nats.connect(
            self.servers.nats,
            name="gxwf-tenant-gateway",
            connect_timeout=5,
            **connect_options(self.servers.nats),
            **reconnecting("tenant-gateway"),
        )
        context = GatewayContext(
            store=self.store,
            queries=queries,
            records=MongoConsumerRecords(self.store),
            objects=self.objects,
            events=JetStreamSink(self.nc, timeout=self.settings.tenant_gateway_publish_timeout_seconds),
            catalogue=MongoAssetCatalogue(self.store.db),
            leases=MongoLeases(self.store.db),
            logs=JetStreamLogReader(self.nc.jetstream()),
            settings=self.settings,
            key=self.key,
            tenants=TenantCache(self.settings.tenant_gateway_auth_cache_seconds),
        )
        try:
            self.url = await self._served.start(create_app(context, self.readiness))
        except ListenError as error:
            await self.nc.close()
            raise ServiceError(str(error)) from None
        log.info("tenant gateway listening", url=self.url)
        return self.url

    async def stop(self) -> None:
        await self._served.stop()
        if self.nc is not None:
            await self.nc.close()
        await self.store.close()
        await self.objects.close()
