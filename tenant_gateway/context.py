"""What every gateway route uses: the installation's adapters (the gateway holds the credentials) and settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ports.assets import AssetCatalogue
from ports.events import EventSink
from ports.leases import Leases
from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import ConsumerQueries
from ports.records import ConsumerRecords
from ports.store import StateStore
from tenant_gateway.settings import TenantGatewaySettings
from tenant_gateway.tenancy import TenantCache


@dataclass
class GatewayContext:
    store: StateStore
    queries: ConsumerQueries
    records: ConsumerRecords
    objects: ObjectStore
    events: EventSink
    catalogue: AssetCatalogue
    leases: Leases
    logs: LogReader
    settings: TenantGatewaySettings
    key: str
    tenants: TenantCache = field(default_factory=lambda: TenantCache(0))
