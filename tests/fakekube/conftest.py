"""A fresh fake cluster per test: the API on a loopback port, the controller with short timings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from kubernetes_asyncio.client import ApiClient

from fakekube import ControllerConfig, FakeKubeServer

NAMESPACE = "team-a"


def pod_template(annotations: dict[str, str] | None = None, restart: str = "Never") -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "work"}, "annotations": annotations or {}},
        "spec": {
            "restartPolicy": restart,
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}],
        },
    }


def job(name: str, annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"run": name}},
        "spec": {"backoffLimit": 0, **spec, "template": pod_template(annotations)},
    }


def deployment(name: str, replicas: int = 1, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    template = pod_template(annotations, restart="Always")
    template["metadata"]["labels"] = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
    }


@pytest_asyncio.fixture(loop_scope="session")
async def kube() -> AsyncIterator[FakeKubeServer]:
    config = ControllerConfig(pending=0.01, duration=0.05, time_scale=0.05)
    async with FakeKubeServer(controller=config, validate="1.30.0") as server:
        yield server


@pytest_asyncio.fixture(loop_scope="session")
async def api(kube: FakeKubeServer) -> AsyncIterator[ApiClient]:
    async with kube.api_client() as client:
        await _namespace(client)
        yield client


async def _namespace(client: ApiClient) -> None:
    from kubernetes_asyncio.client import CoreV1Api

    await CoreV1Api(client).create_namespace({"metadata": {"name": NAMESPACE}})
