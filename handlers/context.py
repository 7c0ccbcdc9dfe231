from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from events.envelope import SOURCE, Envelope, derived_id, new_event
from events.payloads.common import Payload
from ports.assets import AssetCatalogue
from ports.compute import ComputeBackend
from ports.deployments import DeploymentBackend
from ports.edc import EdcClient
from ports.events import EventSink
from ports.faults import FaultPoints, NoFaults
from ports.leases import Leases
from ports.logs import LogSink
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
    # Development and tests only: a run request naming an asset the catalogue does not know runs the command it
    # carries. Off, whoever can publish wf.run.requested can run only what the catalogue holds.
    adhoc_runs: bool = False
    # Deployment backends by kind of site ("local", "kubernetes"); a site whose kind is missing fits nowhere.
    deployments: Mapping[str, DeploymentBackend] = field(default_factory=dict)
    sites: tuple[Site, ...] = ()
    # Longest wait for a deployed WorkflowApi to answer; below the bus's ack wait, so no redelivery meanwhile.
    deploy_timeout: float = 20.0
    # Where the live logs of running attempts go (the log shipper).
    logs: LogSink | None = None
    result_retention_days: float = 30.0
    # How long a handler whose event is ahead of the state it needs (another consumer of the same fact has not
    # applied it yet) waits in place before handing the event back to the bus. The runtime waits a moment, so the
    # usual case (the tracker a few milliseconds behind) needs no redelivery; the in-process tier runs handlers
    # one at a time, where waiting in place cannot help, and keeps 0.
    ahead_wait: float = 0.0
    # The CloudEvents source of what this handler emits; the composition root names each handler's.
    source: str = SOURCE

    def acting_as(self, source: str) -> HandlerContext:
        return replace(self, source=source)

    async def emit(
        self,
        payload: Payload,
        *,
        about: str,
        cause: Envelope[Any] | str | None,
        correlation: str | None = None,
        key: Sequence[str] = (),
        event_id: str | None = None,
    ) -> str:
        """Publish `payload` on its own subject as an event about the document `about`; its id.

        The id is derived, never random, so a retried handler publishes the same event again and JetStream
        drops the copy: from `key` (default: `about`) and the subject, or `event_id` where a handler needs a
        particular one (one per run attempt). `cause` is the event being handled, or the id of what caused it
        where that is no event (a teardown's key, a run's last transition); the flow's correlation is the
        cause's, else `about`."""
        if not payload.subject:
            raise TypeError(f"{type(payload).__qualname__} names no subject: it is no event")
        if isinstance(cause, Envelope):
            causation: str | None = cause.id
            correlation = correlation or cause.correlationid
        else:
            causation = cause
        event_id = event_id or derived_id(*(key or (about,)), payload.subject)
        await self.events.publish(
            new_event(
                payload.subject,
                payload,
                id_=event_id,
                subject=about,
                correlationid=correlation or about,
                causationid=causation,
                source=self.source,
            )
        )
        return event_id

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

    def require_logs(self) -> LogSink:
        if self.logs is None:
            raise RuntimeError("this handler needs a log sink and none was configured")
        return self.logs

    def require_assets(self) -> AssetCatalogue:
        if self.assets is None:
            raise RuntimeError("this handler needs the asset catalogue and none was configured")
        return self.assets
