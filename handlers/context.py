from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ports.assets import AssetCatalogue
from ports.compute import ComputeBackend
from ports.deployments import DeploymentBackend
from ports.edc import EdcClient
from ports.events import EventSink
from ports.faults import FaultPoints, NoFaults
from ports.leases import Leases
from ports.objects import ObjectStore
from ports.store import StateStore
from schemas.sites import ConsumerQuota, Site


@dataclass(frozen=True)
class RunLimits:
    """Runs admitted at once (pending or running): per consumer, so no one starves the others, and per site;
    plus the site's consumer quota on the resources a consumer's active runs hold together."""

    per_consumer: int = 4
    per_site: int = 16
    quota: ConsumerQuota = field(default_factory=ConsumerQuota)

    @property
    def runs_per_consumer(self) -> int:
        return min(self.per_consumer, self.quota.runs) if self.quota.runs is not None else self.per_consumer


@dataclass(frozen=True)
class HandlerContext:
    """The ports a handler may use; adapters are chosen at start-up and injected here."""

    store: StateStore
    events: EventSink
    compute: ComputeBackend | None = None
    faults: FaultPoints = field(default_factory=NoFaults)
    objects: ObjectStore | None = None
    leases: Leases | None = None
    limits: RunLimits = field(default_factory=RunLimits)
    # Who this process is among the replicas, for leases.
    holder: str = "gxwf"
    edc: EdcClient | None = None
    assets: AssetCatalogue | None = None
    # Deployment backends by kind of site ("local", "kubernetes"); a site whose kind is missing fits nowhere.
    deployments: Mapping[str, DeploymentBackend] = field(default_factory=dict)
    sites: tuple[Site, ...] = ()
    # Longest wait for a deployed WorkflowApi to answer; below the bus's ack wait, so no redelivery meanwhile.
    deploy_timeout: float = 20.0

    def require_compute(self) -> ComputeBackend:
        if self.compute is None:
            raise RuntimeError("this handler needs a compute backend and none was configured")
        return self.compute

    def require_objects(self) -> ObjectStore:
        if self.objects is None:
            raise RuntimeError("this handler needs an object store and none was configured")
        return self.objects

    def require_edc(self) -> EdcClient:
        if self.edc is None:
            raise RuntimeError("this handler needs an EDC client and none was configured")
        return self.edc

    def require_assets(self) -> AssetCatalogue:
        if self.assets is None:
            raise RuntimeError("this handler needs the asset catalogue and none was configured")
        return self.assets
