"""A fresh fake cluster per test (API over HTTP on 127.0.0.1, controller with short timings) and the backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from adapters.kubernetes_compute import KubernetesJobBackend
from events.payloads.run import RunSpec
from fakekube import ControllerConfig, FakeKubeServer
from ports.compute import RunOwner, WorkloadStatus

OWNER = RunOwner(consumer_id="did:web:consumer.example:alice", asset_id="carla-minimal", asset_version=2)


def spec(**fields: object) -> RunSpec:
    return RunSpec.model_validate({"image": "busybox:1.36", "command": ["sh", "-c", "echo hi"], **fields})


@pytest_asyncio.fixture(loop_scope="session")
async def kube() -> AsyncIterator[FakeKubeServer]:
    # Validation on: every object the backend writes is checked with kubernetes-validate --strict for 1.30.
    config = ControllerConfig(pending=0.01, duration=0.05, time_scale=0.05)
    async with FakeKubeServer(controller=config, validate="1.30.0") as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session", params=[False, True], ids=["reads", "watches"])
async def backend(kube: FakeKubeServer, request: pytest.FixtureRequest) -> AsyncIterator[KubernetesJobBackend]:
    # Every scenario twice: status read from the API, and answered from the list+watch caches.
    compute = await KubernetesJobBackend.from_kubeconfig(
        kube.kubeconfig_path, stop_timeout_seconds=2.0, poll_seconds=0.02, watch=request.param, watch_seconds=1
    )
    yield compute
    await compute.close()


async def status_until(
    backend: KubernetesJobBackend,
    run_id: str,
    done: Callable[[WorkloadStatus], bool],
    *,
    attempt: int = 1,
    timeout: float = 5.0,
) -> WorkloadStatus:
    """Poll the backend's status (as the watcher does) until `done` holds; the last status otherwise fails."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await backend.status(run_id, attempt=attempt)
        if done(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"status of {run_id} never matched; last: {status}")
        await asyncio.sleep(0.02)
