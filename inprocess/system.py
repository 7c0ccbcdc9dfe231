"""One provider's whole handler side in memory: the store, the bus and every port, wired like the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adapters.memory_store import MemoryStateStore
from handlers.context import HandlerContext, RunLimits
from inprocess.bus import InProcessBus
from inprocess.doubles import FakeCompute, FakeDeployments, FakeEdc, MemoryAssets, MemoryObjects
from schemas.sites import Capabilities, Site


def local_site(name: str = "local", *, cpu: float = 8, memory: str = "16Gi", gpu: int = 0) -> Site:
    return Site(name=name, backend="local", capabilities=Capabilities(cpu=cpu, memory=memory, gpu=gpu))


@dataclass
class InProcessSystem:
    bus: InProcessBus
    store: MemoryStateStore
    compute: FakeCompute
    objects: MemoryObjects
    assets: MemoryAssets
    edc: FakeEdc
    deployments: FakeDeployments
    ctx: HandlerContext
    sites: tuple[Site, ...] = field(default=())

    @classmethod
    def build(
        cls,
        workdir: Path,
        *,
        sites: tuple[Site, ...] | None = None,
        limits: RunLimits | None = None,
        deliver_twice: bool = False,
        exit_on_start: int | None = None,
    ) -> InProcessSystem:
        """As gxwf.runtime.HandlerService composes the real adapters, with in-memory ones; the compute site is
        the first configured site."""
        chosen = sites if sites is not None else (local_site(),)
        bus = InProcessBus(deliver_twice=deliver_twice)
        store = MemoryStateStore()
        compute = FakeCompute(workdir, site=chosen[0].name if chosen else "local", exit_on_start=exit_on_start)
        objects, assets, edc, deployments = MemoryObjects(), MemoryAssets(), FakeEdc(), FakeDeployments()
        ctx = bus.attach(
            HandlerContext(
                store=store,
                events=bus,
                compute=compute,
                objects=objects,
                limits=limits or RunLimits(),
                holder="in-process",
                edc=edc,
                assets=assets,
                # The tier's tests request runs of commands of their own, as a developer's bus would.
                adhoc_runs=True,
                deployments={"local": deployments},
                sites=chosen,
            )
        )
        return cls(bus, store, compute, objects, assets, edc, deployments, ctx, chosen)
