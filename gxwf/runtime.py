"""The composition root: adapters are chosen here and injected into the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

import nats
import structlog
from faststream.exceptions import IncorrectState

from adapters.edc_client import HttpEdcClient, ManagementLookup
from adapters.faults import ConfiguredFaults
from adapters.fencing import FencedCompute, FencedEvents, FencedLogSink, FencedObjects, LeaseGuard
from adapters.jetstream_logs import JetStreamLogSink
from adapters.kube_deployments import KubernetesDeploymentBackend
from adapters.kube_manifests import WorkflowApiImage
from adapters.kubernetes_compute import KubernetesJobBackend
from adapters.local_compute import LocalProcessBackend
from adapters.local_deployments import LocalDeploymentBackend
from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_fencing import MongoFencedStore
from adapters.mongo_leases import MongoLeases
from adapters.mongo_replica_stats import MongoReplicaStats
from adapters.mongo_store import MongoStateStore
from adapters.s3_objects import S3ObjectStore
from adapters.slurm_compute import SlurmJobBackend
from adapters.unreachable import server_unreachable
from events.bus import Bus
from events.delivery import DeliveryPolicy
from events.envelope import Envelope
from events.permissions import connect_options, manages_streams
from events.streams import StreamSettings, ensure_streams, replicas_for
from gxwf.definitions import load_sites
from gxwf.endpoints import Endpoints as Endpoints  # re-exported: the composition root hands it out
from gxwf.errors import UserError
from gxwf.kubernetes_wiring import gateway_key, run_egress_of, workflow_api_settings
from gxwf.replica_stats import ReplicaFigures
from gxwf.replicas import replica_label
from gxwf.settings import Settings
from handlers.context import HandlerContext, RunLimits
from handlers.declare import Loop, Periodic, source_of
from handlers.subscriptions import HandlerFn, for_groups, periodic_for_groups
from ports.compute import ComputeBackend
from ports.deployments import DeploymentBackend
from ports.leases import LeaseLost
from schemas.connectors import ConnectorRegistry
from schemas.sites import ConsumerQuota

log = structlog.get_logger("gxwf.runtime")


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        max_attempts=settings.max_attempts,
        backoff=tuple(settings.backoff_seconds),
        ack_wait=settings.ack_wait_seconds,
        concurrency=settings.handler_concurrency,
        unreachable=server_unreachable,
    )


async def _unwired(event: Envelope[Any]) -> None:
    raise RuntimeError("handler not wired: this bus was built for documentation only")


def _bind(
    handle: HandlerFn, ctx: HandlerContext, counted: Callable[[], None] | None = None
) -> Callable[[Envelope[Any]], Awaitable[None]]:
    async def bound(event: Envelope[Any]) -> None:
        await handle(event, ctx)
        if counted is not None:
            counted()

    return bound


def wire(bus: Bus, groups: set[str] | None, ctx: HandlerContext | None, figures: ReplicaFigures | None = None) -> Bus:
    """Declare a durable subscriber per declared subscription of the chosen handler groups; a site's own
    handlers get a durable of that site (`jobs-start-pending-<site>`), so every site sees every event."""
    site = ctx.compute.site if ctx is not None and ctx.compute is not None else None
    for sub in for_groups(groups):
        durable = sub.durable_on(site)
        counted = functools.partial(figures.handled, durable) if figures is not None else None
        handler = _bind(sub.handle, ctx.acting_as(source_of(sub.group)), counted) if ctx is not None else _unwired
        bus.subscribe(subject=sub.subject, durable=durable, payload=sub.payload, handler=handler)
    return bus


async def prepare_streams(nats_url: str, settings: Settings) -> None:
    """Create or update the streams. A component's own restricted user may not: whoever started the servers
    (`gxwf up`, `gxwf stack up`) or the handlers did."""
    if not manages_streams(nats_url):
        return
    nc = await nats.connect(connect_timeout=5, max_reconnect_attempts=3, **connect_options(nats_url))
    try:
        await ensure_streams(
            nc.jetstream(),
            StreamSettings(
                duplicate_window_seconds=settings.duplicate_window_seconds,
                max_bytes=settings.stream_max_bytes,
                replicas=replicas_for(nats_url, settings.stream_replicas),
            ),
        )
    finally:
        await nc.close()


class HandlerService:
    """Handlers of the chosen groups as durable subscribers in this process, plus the jobs watcher."""

    def __init__(
        self,
        settings: Settings,
        endpoints: Endpoints,
        groups: Iterable[str] | None = None,
        *,
        connectors: ConnectorRegistry | None = None,
        edc_backoff: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0),
        management_lookup: ManagementLookup | None = None,
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.groups = set(groups) if groups else None
        self.store = MongoStateStore.connect(endpoints.mongo, settings.mongo_database)
        self.assets = MongoAssetCatalogue(self.store.db)
        self.sites = tuple(load_sites(settings.sites_file).sites)
        local_deployments = LocalDeploymentBackend(settings.state_dir / "consumers", settings.workflow_api_url)
        # A Slurm site's consumers reach the WorkflowApi that runs as a process beside the handlers (on the
        # cluster's login or service host), as a local site's do.
        self.deployments: dict[str, DeploymentBackend] = {"local": local_deployments, "slurm": local_deployments}
        self.kubernetes: KubernetesDeploymentBackend | None = None
        # Only the deployment handlers deploy per-consumer WorkflowApis, so only they need the gateway settings.
        deploys = self.groups is None or "deployment" in self.groups
        if deploys and any(site.backend == "kubernetes" for site in self.sites):
            self.kubernetes = KubernetesDeploymentBackend(
                WorkflowApiImage(
                    settings.workflow_api_image,
                    settings=workflow_api_settings(settings),
                    gateway_key=gateway_key(settings),
                )
            )
            self.deployments["kubernetes"] = self.kubernetes
        # Without a connector the provisioning handlers cannot learn consumers or answer EDC.
        self.edc = (
            HttpEdcClient(
                connectors,
                MongoEdcCallLog(self.store.db),
                backoff=edc_backoff,
                attempts=len(edc_backoff),
                management_lookup=management_lookup,
            )
            if connectors is not None
            else None
        )
        self.objects = S3ObjectStore(
            endpoints.s3,
            settings.s3_bucket,
            access_key=endpoints.s3_access_key,
            secret_key=endpoints.s3_secret_key,
            region=settings.s3_region,
        )
        # The local backend is always there: its run directories are also what tests and benchmarks inspect.
        self.local_compute = LocalProcessBackend(settings.state_dir / "runs", site=settings.compute_site or "local")
        self.kubernetes_compute: KubernetesJobBackend | None = None
        self.compute: ComputeBackend = self.local_compute
        if settings.compute_backend == "kubernetes":
            self.kubernetes_compute = KubernetesJobBackend(
                kubeconfig=settings.kubeconfig,
                context=settings.kube_context,
                site=settings.compute_site or "kubernetes",
                default_image=settings.run_image,
                stop_timeout_seconds=settings.stop_timeout_seconds,
                watch=settings.kubernetes_watch,
                log_dir=settings.state_dir / "kubernetes-logs",
                consumer_quota=self._quota_of(settings.compute_site or "kubernetes"),
                objects=self.objects,
                stage_image=settings.workflow_api_image,
                egress=run_egress_of(settings, endpoints.s3),
                scratch_size_limit=settings.run_scratch_size_limit,
                outputs_max_bytes=settings.run_outputs_max_bytes,
                outputs_max_entries=settings.run_outputs_max_files,
            )
            self.compute = self.kubernetes_compute
        self.slurm_compute: SlurmJobBackend | None = None
        if settings.compute_backend == "slurm":
            self.slurm_compute = self._slurm_backend(settings)
            self.compute = self.slurm_compute
        # Runs on the local backend are staged in from the object store (their uploaded inputs).
        self.local_compute.objects = self.objects
        self.bus: Bus | None = None
        # Who this process is among the replicas: its leases' holder and its replica_stats document's id.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.figures = ReplicaFigures(replica_label(), self.holder)
        self.replica_stats = MongoReplicaStats(self.store.db)
        self._running: list[Loop] = []
        self._loops: list[asyncio.Task[None]] = []
        self._guards: list[LeaseGuard] = []
        self.ready = asyncio.Event()

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.assets.ensure_indexes()
        await self.objects.ensure_bucket()
        await prepare_streams(self.endpoints.nats, self.settings)
        bus = Bus(self.endpoints.nats, delivery_policy(self.settings), name="handlers")
        ctx = HandlerContext(
            store=self.store,
            events=bus,
            compute=self.compute,
            faults=ConfiguredFaults(self.settings.fault_points),
            objects=self.objects,
            leases=MongoLeases(self.store.db),
            limits=RunLimits(
                per_consumer=self.settings.runs_per_consumer,
                per_site=self.settings.runs_per_site,
                quota=self.consumer_quota(),
            ),
            holder=self.holder,
            edc=self.edc,
            assets=self.assets,
            adhoc_runs=self.settings.adhoc_runs,
            deployments=self.deployments,
            sites=self.sites,
            deploy_timeout=self.settings.deploy_timeout_seconds,
            result_retention_days=self.settings.result_retention_days,
            ahead_wait=2.0,
        )
        wire(bus, self.groups, ctx, self.figures)
        await bus.broker.start()
        await bus.forward_exhausted_deliveries()
        self.bus = bus
        js = bus.broker.config.connection_state.stream
        # The live-log stream is reachable only once the broker is connected.
        loop_ctx = replace(ctx, logs=JetStreamLogSink(js)) if js is not None else ctx
        for declared in periodic_for_groups(self.groups):
            self._start_loop(declared, self._fenced(loop_ctx).acting_as(source_of(declared.name)))
        self._loops.append(asyncio.create_task(self._record_figures(), name="replica-stats"))
        self.ready.set()
        log.info("handlers started", groups=sorted(self.groups) if self.groups else "all")

    def _slurm_backend(self, settings: Settings) -> SlurmJobBackend:
        name = settings.compute_site
        site = next((site for site in self.sites if site.name == name), None)
        if site is None or site.slurm is None:
            raise UserError(
                f"GXWF_COMPUTE_BACKEND=slurm needs GXWF_COMPUTE_SITE to name a site with backend slurm in the sites "
                f"file (got {name!r})"
            )
        return SlurmJobBackend.for_site(
            site.name,
            site.slurm,
            objects=self.objects,
            artifacts_dir=settings.state_dir / "slurm-artifacts",
            stop_timeout_seconds=settings.stop_timeout_seconds,
            outputs_max_bytes=settings.run_outputs_max_bytes,
            outputs_max_entries=settings.run_outputs_max_files,
        )

    def consumer_quota(self) -> ConsumerQuota:
        """The quota of the site whose runs this process dispatches (the compute backend's site), if configured."""
        return self._quota_of(self.compute.site)

    def _quota_of(self, site_name: str) -> ConsumerQuota:
        site = next((site for site in self.sites if site.name == site_name), None)
        return site.consumer_quota if site is not None else ConsumerQuota()

    async def readiness(self) -> dict[str, str]:
        """What /readyz reports: subscribers started, NATS connected, MongoDB and S3 answering."""
        checks = {"handlers": "ok" if self.ready.is_set() else "starting"}
        connection = self.bus.broker.config.connection_state.connection if self.bus else None
        checks["nats"] = "ok" if connection is not None and connection.is_connected else "disconnected"
        checks["mongo"] = await self.store.health()
        checks["s3"] = await self.objects.health()
        return checks

    def _fenced(self, ctx: HandlerContext) -> HandlerContext:
        """The loop's own lease guard, and its writes through views that check it (adapters/fencing.py)."""
        guard = LeaseGuard(MongoLeases(self.store.db))
        self._guards.append(guard)
        self.figures.guards.append(guard)
        return replace(
            ctx,
            leases=guard,
            store=MongoFencedStore(self.store, guard),
            events=FencedEvents(ctx.events, guard),
            compute=FencedCompute(ctx.compute, guard) if ctx.compute is not None else None,
            objects=FencedObjects(ctx.objects, guard) if ctx.objects is not None else None,
            logs=FencedLogSink(ctx.logs, guard) if ctx.logs is not None else None,
        )

    def _start_loop(self, declared: Periodic, ctx: HandlerContext) -> None:
        interval = float(getattr(self.settings, declared.interval))
        loop = declared.start(ctx)
        self._running.append(loop)
        self._loops.append(asyncio.create_task(self._every(interval, loop, declared.name), name=declared.name))

    async def _every(self, interval: float, loop: Loop, name: str) -> None:
        failing = False
        while True:
            try:
                self.figures.passed(name, await loop.pass_once())
            except LeaseLost as lost:
                # Another replica acts now: this pass's remaining writes are not ours to make.
                self.figures.lost(name)
                log.info("periodic pass ended: its lease was lost", step=name, reason=str(lost))
            except Exception as error:  # a transient store or bus error must not end the loop
                # Said once while a server is away, not at every pass; other failures every time.
                if not (failing and server_unreachable(error)):
                    log.warning("periodic pass failed", step=name, error=repr(error))
                failing = server_unreachable(error)
            else:
                if failing:
                    log.info("periodic pass works again", step=name)
                failing = False
            await asyncio.sleep(interval)

    async def _record_figures(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_stats_interval_seconds)
            try:
                await self.replica_stats.record(self.holder, self.figures.document())
            except Exception as error:  # figures are best effort: a store outage must not end the handlers
                log.debug("replica figures not recorded", error=repr(error))

    async def stop(self) -> None:
        self.ready.clear()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await _bounded(task, f"cancelling {task.get_name()}")
        # Bounded: a handler that does not finish in time is abandoned, its event unacked, so JetStream delivers
        # it again (to this service's next start or another replica). A stop must never hang a pod's shutdown.
        for loop in self._running:
            await _bounded(loop.close(), f"closing {type(loop).__name__}")
        # Handed over at once rather than at expiry: a rolling restart does not leave the dispatcher idle.
        for guard in self._guards:
            await _bounded(guard.release_all(), "releasing the leases")
        if self.bus is not None:
            stopped = await _bounded(self.bus.broker.stop(), "stopping the subscribers (handlers still busy)")
            connection = None
            if not stopped:
                # A broker whose stop got as far as dropping its connection state has none to close.
                with contextlib.suppress(IncorrectState):
                    connection = self.bus.broker.config.connection_state.connection
            if connection is not None:
                # Its drain needs the server; without one the connection would go on reconnecting.
                await _bounded(connection.close(), "closing the NATS connection")
            # Started: its last figures, with the events its handlers finished while stopping.
            await _bounded(self.replica_stats.record(self.holder, self.figures.document(stopped=True)), "figures")
        if self.edc is not None:
            await self.edc.close()
        if self.kubernetes is not None:
            await self.kubernetes.close()
        if self.kubernetes_compute is not None:
            await self.kubernetes_compute.close()
        if self.slurm_compute is not None:
            await self.slurm_compute.close()
        await self.store.close()
        await self.objects.close()


_STOP_SECONDS = 10.0


async def _bounded(step: Awaitable[Any], what: str) -> bool:
    """Whether `step` finished. A step that fails does not stop the others; one that failed only because a server
    is away (a stop after the embedded stack gave up on it) says nothing: that was said already."""
    try:
        await asyncio.wait_for(step, _STOP_SECONDS)
    except TimeoutError:
        log.warning("stop step abandoned after its time", step=what, seconds=_STOP_SECONDS)
        return False
    except Exception as error:
        inner = error.exceptions if isinstance(error, ExceptionGroup) else (error,)
        if not all(server_unreachable(one) for one in inner):
            log.warning("stop step failed", step=what, error=repr(error))
        return False
    return True
