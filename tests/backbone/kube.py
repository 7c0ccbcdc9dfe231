"""The fake Kubernetes API and handler services that run their jobs on it, shared by the backbone's tests."""

from __future__ import annotations

from typing import Any

from fakekube import ControllerConfig, FakeKubeServer
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings


def fake_cluster() -> FakeKubeServer:
    """Every object written is validated strictly for 1.30; pods start at once and run briefly by default."""
    return FakeKubeServer(controller=ControllerConfig(pending=0.01, duration=0.1, time_scale=0.05), validate="1.30.0")


def on_kubernetes(settings: Settings, kube: FakeKubeServer, **updates: Any) -> Settings:
    """Settings that choose the Kubernetes compute backend, as in production (GXWF_COMPUTE_BACKEND, GXWF_KUBECONFIG)."""
    return settings.model_copy(update={"compute_backend": "kubernetes", "kubeconfig": kube.kubeconfig_path, **updates})


async def kube_service(
    settings: Settings, endpoints: Endpoints, kube: FakeKubeServer, groups: list[str], **updates: Any
) -> HandlerService:
    service = HandlerService(on_kubernetes(settings, kube, **updates), endpoints, groups=groups)
    assert service.kubernetes_compute is not None
    service.kubernetes_compute.poll_seconds = 0.02
    await service.start()
    return service
