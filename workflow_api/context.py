"""What every route uses: the ports (store, read models, records, objects, events, assets, leases) and settings;
built once by the service, which chooses their adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ports.assets import AssetCatalogue
from ports.events import EventSink
from ports.leases import Leases
from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import ConsumerQueries
from ports.records import ConsumerRecords
from ports.store import StateStore
from workflow_api.follows import FollowSlots
from workflow_api.principals import PrincipalCache
from workflow_api.settings import WorkflowApiSettings

SOURCE = "urn:gaiax-workflows:workflow-api"


@dataclass
class ApiContext:
    store: StateStore
    queries: ConsumerQueries
    records: ConsumerRecords
    objects: ObjectStore
    events: EventSink
    catalogue: AssetCatalogue
    leases: Leases
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
