from __future__ import annotations

from dataclasses import dataclass, field

from ports.compute import ComputeBackend
from ports.events import EventSink
from ports.faults import FaultPoints, NoFaults
from ports.leases import Leases
from ports.objects import ObjectStore
from ports.store import StateStore


@dataclass(frozen=True)
class RunLimits:
    """Runs admitted at once (pending or running): per consumer, so no one starves the others, and per site."""

    per_consumer: int = 4
    per_site: int = 16


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

    def require_compute(self) -> ComputeBackend:
        if self.compute is None:
            raise RuntimeError("this handler needs a compute backend and none was configured")
        return self.compute

    def require_objects(self) -> ObjectStore:
        if self.objects is None:
            raise RuntimeError("this handler needs an object store and none was configured")
        return self.objects
