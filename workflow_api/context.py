"""What every route uses: the ports (store, read models, records, objects, events, assets, leases) and settings;
built once by the service, which chooses their adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from ports.events import EventSink
from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import ConsumerQueries
from ports.records import ConsumerRecords
from ports.store import TransitionResult
from schemas.assets import StoredAsset
from schemas.documents import StatefulDocument
from workflow_api.follows import FollowSlots
from workflow_api.principals import PrincipalCache
from workflow_api.settings import WorkflowApiSettings

SOURCE = "urn:gaiax-workflows:workflow-api"

D = TypeVar("D", bound=StatefulDocument)


# Of each port, what the WorkflowApi uses: the store's adapter or the tenant gateway's client answers it.
class ApiStore(Protocol):
    async def create(self, doc: StatefulDocument, *, event_id: str) -> bool: ...

    async def get(self, kind: type[D], doc_id: str) -> D | None: ...

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult: ...

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]: ...


class AssetVersions(Protocol):
    async def version(self, asset_id: str, version: int) -> StoredAsset | None: ...


class LeaseHolder(Protocol):
    async def hold(self, name: str, holder: str, ttl_seconds: float) -> object:
        """Truthy when taken or renewed (a lease, or True through the tenant gateway)."""
        ...


@dataclass
class ApiContext:
    store: ApiStore
    queries: ConsumerQueries
    records: ConsumerRecords
    objects: ObjectStore
    events: EventSink
    catalogue: AssetVersions
    leases: LeaseHolder
    settings: WorkflowApiSettings
    # The local backend's run directories, where a running run's log grows (STATE_DIR/runs).
    runs_dir: Path
    # Scratch space for archives being checked and unpacked before they go to the object store.
    scratch_dir: Path
    holder: str = "workflow-api"
    # The log stream, for following runs whose log is not on this machine.
    logs: LogReader | None = None
    # Filled by the service: token hash -> principal, for GXWF_WORKFLOW_API_AUTH_CACHE_SECONDS.
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(0))
    # Open log follows per consumer, capped at GXWF_WORKFLOW_API_LOG_FOLLOWS_PER_CONSUMER (the service sets it).
    follows: FollowSlots = field(default_factory=lambda: FollowSlots(8))
