"""The Kubernetes deployment backend (kubernetes-asyncio): server-side apply of a consumer's objects, readiness,
and a teardown that deletes the namespace and confirms it is gone.

Apply is create-or-patch with one field manager, so deploying again changes nothing. API errors that may heal
(409 conflicts, 429, 5xx, network) are reported retryable; the deployment handler retries them until its
deadline. A quota or validation refusal is final, with the API's own message as the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
import structlog
from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from adapters.kube_manifests import MANAGER, WorkflowApiImage, manifests, namespace_of, path_of, url_of
from ports.deployments import DeploymentError, DeploymentSpec
from schemas.sites import Site

log = structlog.get_logger("gxwf.kubernetes")
_RETRYABLE = {409, 429, 500, 502, 503, 504}
_OBJECT = {200: "object", 201: "object", 202: "object"}


class KubernetesDeploymentBackend:
    name = "kubernetes"

    def __init__(
        self, image: WorkflowApiImage, *, poll_seconds: float = 0.2, delete_wait_seconds: float = 20.0
    ) -> None:
        self.image = image
        self.poll_seconds = poll_seconds
        # Below the bus's ack wait: a namespace still terminating is checked again on the redelivery.
        self.delete_wait_seconds = delete_wait_seconds
        self._clients: dict[str, ApiClient] = {}
        self._lock = asyncio.Lock()
        # API requests made, for the provisioning benchmark.
        self.calls = 0

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def _client(self, site: Site) -> ApiClient:
        async with self._lock:
            if site.name not in self._clients:
                target = site.kubernetes
                if target is None:
                    raise DeploymentError(f"site {site.name}: no kubernetes section")
                configuration = Configuration()
                if target.in_cluster:
                    config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
                else:
                    await config.load_kube_config(
                        config_file=target.kubeconfig, context=target.context, client_configuration=configuration
                    )
                self._clients[site.name] = ApiClient(configuration)
            return self._clients[site.name]

    async def deploy(self, spec: DeploymentSpec) -> str:
        api = await self._client(spec.site)
        for obj in manifests(spec, self.image):
            await self._call(api, "PATCH", path_of(obj), body=obj, apply=True)
        await self._until_ready(api, spec)
        return url_of(spec)

    async def _until_ready(self, api: ApiClient, spec: DeploymentSpec) -> None:
        """Polls until the Deployment has an available replica; the handler's deadline bounds the wait."""
        path = f"/apis/apps/v1/namespaces/{namespace_of(spec)}/deployments/workflow-api"
        pause = self.poll_seconds / 2
        while True:
            found = await self._call(api, "GET", path)
            status = (found or {}).get("status") or {}
            if (status.get("availableReplicas") or 0) >= 1:
                return
            for condition in status.get("conditions") or ():
                # Pods refused (quota exceeded, limits violated) will not be admitted by waiting longer.
                if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                    raise DeploymentError(f"WorkflowApi pods refused: {condition.get('message')}")
            # Quick for the usual seconds, sparing for a slow cluster with many deployments waiting.
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, 1.0)
            if pause >= 1.0:
                await self._refuse_if_unschedulable(api, spec)

    async def _refuse_if_unschedulable(self, api: ApiClient, spec: DeploymentSpec) -> None:
        """A pod no node can take says why (insufficient cpu, no GPU node): that beats "not ready in time"."""
        path = f"/api/v1/namespaces/{namespace_of(spec)}/pods?labelSelector=app.kubernetes.io%2Fname%3Dworkflow-api"
        listed = await self._call(api, "GET", path) or {}
        for pod in listed.get("items") or ():
            for condition in (pod.get("status") or {}).get("conditions") or ():
                if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
                    raise DeploymentError(f"WorkflowApi pod unschedulable: {condition.get('message')}")

    async def delete(self, spec: DeploymentSpec) -> bool:
        api = await self._client(spec.site)
        path = f"/api/v1/namespaces/{namespace_of(spec)}"
        # Foreground: the namespace goes only after everything in it; absent already counts as deleted.
        await self._call(api, "DELETE", path, body={"propagationPolicy": "Foreground"}, missing_ok=True)
        for _ in range(max(1, int(self.delete_wait_seconds / self.poll_seconds))):
            if await self._call(api, "GET", path, missing_ok=True) is None:
                return True
            await asyncio.sleep(self.poll_seconds)
        return False

    async def _call(
        self,
        api: ApiClient,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        apply: bool = False,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        headers = {"Accept": "application/json"}
        query: list[tuple[str, str]] = []
        if apply:
            headers["Content-Type"] = "application/apply-patch+yaml"
            query = [("fieldManager", MANAGER), ("force", "true")]
        elif body is not None:
            headers["Content-Type"] = "application/json"
        self.calls += 1
        try:
            result = await api.call_api(
                path,
                method,
                query_params=query,
                header_params=headers,
                body=body,
                response_types_map=_OBJECT,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as error:
            if missing_ok and error.status == 404:
                return None
            raise DeploymentError(_reason(method, path, error), retryable=error.status in _RETRYABLE) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise DeploymentError(f"{method} {path}: {error!r}", retryable=True) from None
        return result if isinstance(result, dict) else None


def _reason(method: str, path: str, error: ApiException) -> str:
    message = error.reason or ""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        message = json.loads(error.body or b"").get("message") or message
    return f"{method} {path}: {error.status} {message}"
