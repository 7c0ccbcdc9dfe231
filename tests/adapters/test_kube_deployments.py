"""The Kubernetes deployment backend against the fake API: refusals end with the API's reason, teardown confirms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from kubernetes_asyncio.client import CoreV1Api

from adapters.kube_deployments import KubernetesDeploymentBackend
from adapters.kube_manifests import WorkflowApiImage, manifests, namespace_of
from fakekube import FakeKubeServer
from gxwf.definitions import load_assets
from ports.deployments import DeploymentError, DeploymentSpec
from schemas import tenant_gateway
from schemas.assets import StoredAsset
from schemas.sites import Site

ASSETS = {a.id: a for a in load_assets(Path(__file__).parents[2] / "deploy" / "assets")}


def spec_for(asset_id: str, kube: FakeKubeServer | None = None, **target: object) -> DeploymentSpec:
    definition = ASSETS[asset_id]
    asset = StoredAsset(asset_id=asset_id, version=1, digest=definition.digest(), definition=definition)
    kubernetes = {"kubeconfig": str(kube.kubeconfig_path) if kube else None, **target}
    site = Site.model_validate(
        {
            "name": "gpu-hpc",
            "backend": "kubernetes",
            "kubernetes": kubernetes,
            "capabilities": {"cpu": 64, "memory": "512Gi", "gpu": 8},
        }
    )
    return DeploymentSpec(f"dep-{asset_id}", f"tp-{asset_id}", "did:web:consumer.example", asset, site)


@pytest.fixture
async def kube() -> AsyncIterator[FakeKubeServer]:
    async with FakeKubeServer() as server:
        yield server


@pytest.mark.parametrize("asset_id", sorted(ASSETS))
def test_every_object_is_valid_for_kubernetes_strictly(asset_id: str) -> None:
    spec = spec_for(asset_id, ingress_class="nginx", ingress_domain="gxwf.example.org")
    objects = manifests(spec, WorkflowApiImage("ghcr.io/gaiax-workflows/gxwf:0.1.0"))
    assert [o["kind"] for o in objects][-3:] == ["Deployment", "Service", "Ingress"]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    # The WorkflowApi uses no Kubernetes API: nothing grants it rights, and no token is mounted.
    assert not [o for o in objects if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]
    account = next(o for o in objects if o["kind"] == "ServiceAccount")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert account["automountServiceAccountToken"] is False
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_secret_holds_the_gateway_and_a_token_of_this_deployment_only() -> None:
    spec = spec_for("shell-count")
    gateway = (("GXWF_WORKFLOW_API_GATEWAY_URL", "http://gw.invalid"),)
    image = WorkflowApiImage("img:1", settings=gateway, gateway_key="gateway-key")
    (secret,) = [o for o in manifests(spec, image) if o["kind"] == "Secret"]
    data = secret["stringData"]
    assert data["GXWF_WORKFLOW_API_GATEWAY_TOKEN"] == tenant_gateway.mint("gateway-key", spec.deployment_id)
    token = data["GXWF_WORKFLOW_API_GATEWAY_TOKEN"]
    assert tenant_gateway.verified_deployment("gateway-key", token) == spec.deployment_id
    assert tenant_gateway.verified_deployment("other", token) is None
    assert not [name for name in data if name.startswith(("GXWF_NATS", "GXWF_MONGO", "GXWF_S3"))]
    assert "gateway-key" not in repr(image), "the key stays out of logs and reprs"


async def test_quota_exceeded_is_a_final_failure_with_the_apis_reason(kube: FakeKubeServer) -> None:
    spec = spec_for("shell-count", kube)
    namespace = namespace_of(spec)
    # A cluster operator's quota in the namespace that admits no pod at all.
    async with kube.api_client() as api:
        core = CoreV1Api(api)
        await core.create_namespace({"metadata": {"name": namespace}})
        quota = {"metadata": {"name": "operator-quota"}, "spec": {"hard": {"pods": "0"}}}
        await core.create_namespaced_resource_quota(namespace, quota)
    backend = KubernetesDeploymentBackend(WorkflowApiImage("img:1"), poll_seconds=0.05)
    try:
        with pytest.raises(DeploymentError) as refused:
            await backend.deploy(spec)
        assert not refused.value.retryable
        assert "exceeded quota" in str(refused.value)
        assert await backend.delete(spec)
        assert kube.get("Namespace", namespace) is None
    finally:
        await backend.close()
