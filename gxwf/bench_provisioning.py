"""`gxwf bench provisioning`: N consumers provisioned and deprovisioned at once, on the fake Kubernetes API or
the local backend, through a simulated EDC 0.18 connector, the real ingress, bus, store and handlers.

Reports time from provision request to access granted (p50, p99), time to deprovisioned, Kubernetes API calls
per consumer (made by the deployment backend), and CPU per consumer of this process (handlers, ingress and
simulator; the servers and the fake API run in their own processes and are not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator import shapes
from edc_simulator.connector import SimulatedConnector
from edc_simulator.ledger import Transfer
from edc_simulator.versions import version
from gxwf.errors import UserError
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.assets import Resources, WorkflowAssetDefinition
from schemas.connectors import ConnectorRegistry, EdcConnector
from schemas.provisioning import ProvisionDocument, ProvisionState

KEY = "bench-provisioning-key-0123456789"
ASSET = WorkflowAssetDefinition(
    id="bench-shell", title="bench", command=["/bin/true"], resources=Resources(cpu=0.25, memory="64Mi")
)
# Requests the simulated connector sends at once, as a busy connector would.
SENDERS = 32


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")


async def _until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.1)


async def _all(transfers: list[Transfer], send: Callable[[Transfer], Awaitable[Any]]) -> None:
    gate = asyncio.Semaphore(SENDERS)

    async def one(transfer: Transfer) -> None:
        async with gate:
            await send(transfer)

    await asyncio.gather(*(one(t) for t in transfers))


async def run_benchmark(settings: Settings, n: int, backend: str, *, console: Console, timeout: float = 600) -> None:
    from gxwf.stack_users import bench_stack

    if backend == "kubernetes" and importlib.util.find_spec("fakekube") is None:
        # The fake API is a test double: installed images and wheels leave it out, a checkout has it.
        raise UserError(
            "the Kubernetes provisioning benchmark runs against the fake Kubernetes API of a development "
            "checkout (fakekube/); run it from the repository (`make venv`, then `.venv/bin/gxwf bench ...`)"
        )

    async with (
        bench_stack(settings) as eps,
        contextlib.AsyncExitStack() as stack,
    ):
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gxwf-bench-prov-")))
        kube_url = None
        sites_file = None
        if backend == "kubernetes":
            # Its own process, as a cluster would be: its CPU is not the handlers'.
            kube_url = await _fake_kube(stack, tmp / "kubeconfig")
            sites_file = tmp / "sites.yaml"
            site = {
                "name": "cloud",
                "backend": "kubernetes",
                "kubernetes": {"kubeconfig": str(tmp / "kubeconfig")},
                "capabilities": {"cpu": 64, "memory": "256Gi"},
            }
            sites_file.write_text(json.dumps({"sites": [site]}))
        sim = SimulatedConnector(version("0.18"), ingress_url="http://127.0.0.1:9", api_key=KEY)
        await sim.start()
        stack.push_async_callback(sim.stop)
        registry = ConnectorRegistry(
            connectors=(
                EdcConnector(
                    name="default",
                    api_key=SecretStr(KEY),
                    # The simulated stock provisioner sends its key in the query.
                    api_key_in_query=True,
                    management_url=sim.management_url,
                    management_api_version=sim.version.management_path,
                    management_api_key=SecretStr(sim.management_key),
                ),
            )
        )
        database = f"bench_prov_{uuid.uuid4().hex[:8]}"
        ingress = IngressService(
            # N consumers at once through one connector: not the rate limit's business here.
            EdcSettings(_env_file=None, edc_rate_limit_per_second=0),
            registry,
            nats_url=eps.nats_for("edc_ingress"),
            mongo_url=eps.mongo,
            mongo_database=database,
            host="127.0.0.1",
            port=0,
        )
        sim.ingress_url = await ingress.start()
        stack.push_async_callback(ingress.stop)
        bench = settings.model_copy(
            update={
                "state_dir": tmp / "state",
                "mongo_database": database,
                "sites_file": sites_file,
                "deploy_timeout_seconds": 25.0,
                "handler_concurrency": max(settings.handler_concurrency, 32),
                # The fake cluster runs no WorkflowApi that would call a tenant gateway; the Secrets need the names.
                "tenant_gateway_url": settings.tenant_gateway_url or "http://gxwf-tenant-gateway.bench.invalid",
                "gateway_key": settings.gateway_key or SecretStr(secrets.token_urlsafe(32)),
            }
        )
        service = HandlerService(bench, Endpoints.of_stack(eps, "handlers").with_s3(bench), connectors=registry)
        await service.start()
        stack.push_async_callback(service.stop)
        await service.assets.apply(ASSET)
        store = service.store

        # The bus may be shared (a test session's): handlers with the durable names may also take events other
        # runs left behind, so only this benchmark's transfers are counted and measured.
        async def mine(states: list[str] | None = None) -> list[ProvisionDocument]:
            found = await store.find(ProvisionDocument, states=states, limit=10 * n + 1000)
            return [d for d in found if d.id in asked]

        async def count(state: str) -> int:
            return len(await mine([state]))

        transfers = [sim.ledger.new_transfer(ASSET.id, f"did:web:consumer-{i}.example") for i in range(n)]
        asked: dict[str, float] = {}

        async def begin(transfer: Transfer) -> None:
            await sim.send_event(shapes.negotiation_event(sim.version, transfer.agreement))
            asked[transfer.id] = time.time()
            await sim.send_provisioner_request(transfer, "provision")

        async def end(transfer: Transfer) -> None:
            asked[transfer.id] = time.time()
            await sim.send_provisioner_request(transfer, "deprovision")

        cpu = time.process_time()
        started = time.perf_counter()
        await _all(transfers, begin)
        await _until(lambda: _settled(count, n), timeout)
        provision_seconds = time.perf_counter() - started
        docs = await mine()
        to_granted = [_at(d, ProvisionState.GRANTED) - asked[d.id] for d in docs if d.state == ProvisionState.GRANTED]
        failed = sum(1 for d in docs if d.state == ProvisionState.FAILED)

        started = time.perf_counter()
        await _all(transfers, end)
        await _until(lambda: _deprovisioned(count, n), timeout)
        deprovision_seconds = time.perf_counter() - started
        docs = await mine()
        to_gone = [_at(d, ProvisionState.DEPROVISIONED) - asked[d.id] for d in docs]
        cpu = time.process_time() - cpu
        calls = service.kubernetes.calls / n if service.kubernetes is not None else None
        left = await _namespaces_left(kube_url) if kube_url else 0

    table = Table(title=f"provisioning: {n} consumers at once, {backend} backend, simulated EDC 0.18")
    for column in ("phase", "wall s", "p50 ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    table.add_row(
        "request -> access granted",
        f"{provision_seconds:.1f}",
        f"{_pct(to_granted, 0.5):.0f}",
        f"{_pct(to_granted, 0.99):.0f}",
    )
    table.add_row(
        "deprovision -> deprovisioned",
        f"{deprovision_seconds:.1f}",
        f"{_pct(to_gone, 0.5):.0f}",
        f"{_pct(to_gone, 0.99):.0f}",
    )
    console.print(table)
    console.print(
        f"granted {len(to_granted)}, failed {failed}; "
        + (f"Kubernetes API calls per consumer {calls:.1f}; namespaces left {left}; " if calls is not None else "")
        + f"CPU per consumer {cpu / n * 1000:.1f} ms (this process: handlers, ingress, simulator"
        + ("; the fake API in its own process)" if kube_url else ")")
    )


async def _settled(count: Callable[[str], Awaitable[int]], n: int) -> bool:
    return await count(ProvisionState.GRANTED) + await count(ProvisionState.FAILED) >= n


async def _deprovisioned(count: Callable[[str], Awaitable[int]], n: int) -> bool:
    return await count(ProvisionState.DEPROVISIONED) >= n


def _at(doc: ProvisionDocument, state: str) -> float:
    return next(h.at.timestamp() for h in doc.history if h.to == state)


# Room for every WorkflowApi (250m each): the fake cluster's default two 16-core nodes hold 128 of them.
_FAKE_CLUSTER = """
import asyncio, json, signal, sys
from fakekube import ControllerConfig, FakeKubeServer, NodeSpec

async def main():
    nodes = [NodeSpec(f"node-{i}", cpu="64", memory="256Gi") for i in range(8)]
    async with FakeKubeServer(controller=ControllerConfig(nodes=nodes)) as kube:
        open(sys.argv[1], "w").write(json.dumps(kube.kubeconfig()))
        print(json.dumps({"url": kube.url}), flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

asyncio.run(main())
"""


async def _fake_kube(stack: contextlib.AsyncExitStack, kubeconfig: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FAKE_CLUSTER, str(kubeconfig), stdout=asyncio.subprocess.PIPE
    )

    async def stop() -> None:
        proc.terminate()
        await proc.wait()

    stack.push_async_callback(stop)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    return str(json.loads(line)["url"])


async def _namespaces_left(url: str) -> int:
    async with httpx.AsyncClient(headers={"Authorization": "Bearer fakekube"}) as client:
        listed = (await client.get(f"{url}/api/v1/namespaces")).json()
    return sum(1 for ns in listed.get("items", []) if ns["metadata"]["name"].startswith("gxwf-"))
