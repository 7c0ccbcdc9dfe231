"""Everything one consumer's WorkflowApi needs on a Kubernetes site, as plain manifests with deterministic names.

One namespace per deployment (consumer and transfer), so that a teardown is one namespace deletion and nothing
of one transfer can reach another's. The consumer's runs are Jobs in its run namespace (adapters/
kubernetes_compute/manifests.py), created by the jobs handler, not by the WorkflowApi.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ports.deployments import DeploymentSpec
from schemas import tenant_gateway

APP = "workflow-api"
PORT = 8080
# The per-consumer WorkflowApi's writable state (upload scratch space) on its otherwise read-only filesystem.
STATE_DIR = "/var/lib/gxwf"
MANAGER = "gxwf"


@dataclass(frozen=True)
class WorkflowApiImage:
    image: str
    pull_policy: str = "IfNotPresent"
    # Settings the per-consumer `gxwf workflow-api` needs beside its consumer's (the tenant gateway's URL):
    # GXWF_* names and values, put into its Secret. Never a server's credentials: it reaches its consumer's
    # data only through the tenant gateway, with the token minted from `gateway_key` for its deployment.
    settings: tuple[tuple[str, str], ...] = ()
    gateway_key: str | None = field(default=None, repr=False)


def namespace_of(spec: DeploymentSpec) -> str:
    return f"gxwf-{spec.deployment_id}"[:63]


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def labels_of(spec: DeploymentSpec) -> dict[str, str]:
    # Label values allow no ':' or '/', which DIDs and URNs hold: hashes here, the ids in annotations.
    return {
        "app.kubernetes.io/managed-by": MANAGER,
        "gxwf.io/consumer": _hash(spec.consumer_id),
        "gxwf.io/transfer": _hash(spec.transfer_process_id),
        "gxwf.io/deployment": spec.deployment_id,
    }


def annotations_of(spec: DeploymentSpec) -> dict[str, str]:
    return {
        "gxwf.io/consumer-id": spec.consumer_id,
        "gxwf.io/transfer-process-id": spec.transfer_process_id,
        "gxwf.io/asset": f"{spec.asset.asset_id}@{spec.asset.version}",
    }


def _meta(spec: DeploymentSpec, name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels_of(spec), "annotations": annotations_of(spec)}
    if namespaced:
        meta["namespace"] = namespace_of(spec)
    return meta


def _namespace_meta(spec: DeploymentSpec, name: str) -> dict[str, Any]:
    meta = _meta(spec, name, namespaced=False)
    # The cluster's admission policy (deploy/kustomize/base/admission-policy.yaml) lets the handlers write only
    # in namespaces carrying the consumer label and a Pod Security level; without them a real API server
    # refuses the namespace.
    meta["labels"] = {
        **meta["labels"],
        "gaiax-workflows.io/consumer": _hash(spec.consumer_id),
        "pod-security.kubernetes.io/enforce": "restricted",
    }
    return meta


def manifests(spec: DeploymentSpec, image: WorkflowApiImage) -> list[dict[str, Any]]:
    """In creation order: the namespace first, the Deployment and Service last."""
    ns = namespace_of(spec)
    site = spec.site.kubernetes
    allowed = site.allowed_namespaces if site else []
    # No namespace named: no rule at all (deny). A rule whose `from` is empty would admit every source.
    ingress = (
        [
            {
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}} for name in allowed
                ],
                "ports": [{"protocol": "TCP", "port": PORT}],
            }
        ]
        if allowed
        else []
    )
    pod_labels = {**labels_of(spec), "app.kubernetes.io/name": APP}
    # Sized for the WorkflowApi alone (two pods during a rollout): nothing else is meant to run here.
    hard = {
        "requests.cpu": "500m",
        "limits.cpu": "1",
        "requests.memory": "512Mi",
        "limits.memory": "1Gi",
        "pods": "2",
        "services": "1",
        "secrets": "4",
    }
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _namespace_meta(spec, ns)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(spec, APP),
            # The WorkflowApi reads the store and publishes commands; runs are the jobs handler's, in the
            # consumer's run namespace, and its configuration comes from its Secret as environment. It has no
            # use for the Kubernetes API: no Role, no token.
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": _meta(spec, "consumer-quota"),
            "spec": {"hard": hard},
        },
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": _meta(spec, "consumer-limits"),
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "512Mi"},
                        "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
                        "max": {"cpu": "500m", "memory": "512Mi"},
                    }
                ]
            },
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta(spec, "workflow-api-ingress"),
            "spec": {
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": APP}},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": _meta(spec, "workflow-api-config"),
            "type": "Opaque",
            "stringData": {
                **dict(image.settings),
                **(
                    {"GXWF_WORKFLOW_API_GATEWAY_TOKEN": tenant_gateway.mint(image.gateway_key, spec.deployment_id)}
                    if image.gateway_key
                    else {}
                ),
                # Scratch space for uploads being checked: the root filesystem is read-only.
                "GXWF_STATE_DIR": STATE_DIR,
                "GXWF_CONSUMER_ID": spec.consumer_id,
                "GXWF_TRANSFER_PROCESS_ID": spec.transfer_process_id,
                "GXWF_ASSETS": json.dumps([{"asset_id": spec.asset.asset_id, "version": spec.asset.version}]),
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(spec, APP),
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": APP, "gxwf.io/deployment": spec.deployment_id}},
                "template": {
                    "metadata": {"labels": pod_labels},
                    "spec": {
                        "serviceAccountName": APP,
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                        "volumes": [{"name": "state", "emptyDir": {"sizeLimit": "20Gi"}}],
                        "containers": [
                            {
                                "name": APP,
                                "image": image.image,
                                "imagePullPolicy": image.pull_policy,
                                "args": ["workflow-api", "--host", "0.0.0.0", "--port", str(PORT)],
                                "ports": [{"name": "http", "containerPort": PORT}],
                                "envFrom": [{"secretRef": {"name": "workflow-api-config"}}],
                                "volumeMounts": [{"name": "state", "mountPath": STATE_DIR}],
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "256Mi"},
                                    "limits": {"cpu": "500m", "memory": "512Mi"},
                                },
                                "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec, APP),
            "spec": {
                "selector": {"app.kubernetes.io/name": APP, "gxwf.io/deployment": spec.deployment_id},
                "ports": [{"name": "http", "port": PORT, "targetPort": "http"}],
            },
        },
    ]
    if site is not None and site.ingress_class and site.ingress_domain:
        objects.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": _meta(spec, APP),
                "spec": {
                    "ingressClassName": site.ingress_class,
                    "rules": [
                        {
                            "host": f"{ns}.{site.ingress_domain}",
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": APP, "port": {"number": PORT}}},
                                    }
                                ]
                            },
                        }
                    ],
                },
            }
        )
    return objects


def url_of(spec: DeploymentSpec) -> str:
    site = spec.site.kubernetes
    ns = namespace_of(spec)
    if site is not None and site.ingress_class and site.ingress_domain:
        return f"https://{ns}.{site.ingress_domain}"
    return f"http://{APP}.{ns}.svc:{PORT}"


_PATHS = {
    ("v1", "Namespace"): "/api/v1/namespaces/{name}",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
    ("v1", "ResourceQuota"): "/api/v1/namespaces/{ns}/resourcequotas/{name}",
    ("v1", "LimitRange"): "/api/v1/namespaces/{ns}/limitranges/{name}",
    ("v1", "Secret"): "/api/v1/namespaces/{ns}/secrets/{name}",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services/{name}",
    ("rbac.authorization.k8s.io/v1", "Role"): "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{name}",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{name}"
    ),
    ("networking.k8s.io/v1", "NetworkPolicy"): "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{name}",
    ("networking.k8s.io/v1", "Ingress"): "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/{name}",
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
}


def path_of(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return _PATHS[(obj["apiVersion"], obj["kind"])].format(ns=meta.get("namespace", ""), name=meta["name"])
