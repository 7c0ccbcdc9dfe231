"""The ingress as a running service: NATS and MongoDB connections, the HTTP server, readiness."""

from __future__ import annotations

import nats
import structlog
from nats.aio.client import Client

from adapters.edc_client import HttpEdcClient, ManagementLookup
from adapters.jetstream_sink import JetStreamSink
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_store import MongoStateStore
from edc_ingress.app import Ingress, IngressLimits, create_app
from edc_ingress.settings import ConfigError, EdcSettings
from events.permissions import connect_options
from events.reconnect import reconnecting
from http_serving.server import ListenError, Served
from schemas.connectors import ConnectorRegistry

log = structlog.get_logger("gxwf.edc_ingress")

# Envelope attributes and field names around the largest body an event can carry.
_ENVELOPE_OVERHEAD = 16 * 1024


class IngressService:
    def __init__(
        self,
        settings: EdcSettings,
        registry: ConnectorRegistry,
        *,
        nats_url: str,
        mongo_url: str,
        mongo_database: str,
        host: str | None = None,
        port: int | None = None,
        management_lookup: ManagementLookup | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.host = host if host is not None else settings.edc_ingress_host
        self.port = port if port is not None else settings.edc_ingress_port
        self.nats_url = nats_url
        self.nc: Client | None = None
        self.store = MongoStateStore.connect(mongo_url, mongo_database)
        # Asked only to classify an untyped (pre-0.11) request; EDC is waiting for our answer, so retry little.
        self.edc = HttpEdcClient(
            registry,
            MongoEdcCallLog(self.store.db),
            timeout=min(settings.edc_client_timeout_seconds, 5.0),
            attempts=min(settings.edc_client_attempts, 2),
            backoff=settings.edc_client_backoff_seconds[:1],
            management_lookup=management_lookup,
        )
        self._served = Served("edc-ingress", self.host, self.port)
        self._ingress: Ingress | None = None
        self.url: str | None = None

    async def readiness(self) -> dict[str, str]:
        checks = {"nats": "ok" if self.nc is not None and self.nc.is_connected else "disconnected"}
        checks["mongo"] = await self.store.health()
        return checks

    async def start(self) -> str:
        # Reconnect for ever: while NATS is away the ingress answers 503 (EDC retries) and /readyz says so.
        self.nc = await nats.connect(
            self.nats_url,
            name="gxwf-edc-ingress",
            connect_timeout=5,
            **connect_options(self.nats_url),
            **reconnecting("edc-ingress"),
        )
        sink = JetStreamSink(self.nc, timeout=self.settings.edc_publish_timeout_seconds)
        max_payload = sink.max_payload
        if self.settings.edc_body_limit_bytes + _ENVELOPE_OVERHEAD > max_payload:
            await self.nc.close()
            raise ConfigError(
                f"GXWF_EDC_BODY_LIMIT_BYTES: {self.settings.edc_body_limit_bytes} leaves no room for the envelope "
                f"in NATS's max_payload of {max_payload} bytes; lower it or raise max_payload"
            )
        self._ingress = ingress = Ingress(
            self.registry,
            sink,
            self.store,
            self.readiness,
            IngressLimits(
                body_bytes=self.settings.edc_body_limit_bytes,
                publish_timeout=self.settings.edc_publish_timeout_seconds,
                event_bytes=max_payload,
                rate_per_second=self.settings.edc_rate_limit_per_second,
                burst=self.settings.edc_rate_limit_burst,
            ),
            self.edc,
            dataplane_id=self.settings.edc_dataplane_id,
        )
        try:
            self.url = await self._served.start(create_app(ingress))
        except ListenError as error:
            await self.nc.close()
            raise ConfigError(str(error)) from None
        log.info("edc ingress listening", url=self.url, connectors=self.registry.names)
        return self.url

    async def stop(self) -> None:
        await self._served.stop()
        if self.nc is not None:
            await self.nc.close()
        await self.edc.close()
        if self._ingress is not None:
            await self._ingress.auth.close()
        await self.store.close()
