"""Where run pods may connect to: the cluster's DNS and the object store their stage steps use, nothing else.

A NetworkPolicy names peers by IP block or by namespace and pod labels, never by host name: an object store
given by IP address is allowed as that address; one given by host name needs the operator to say which
addresses (CIDRs, for a store outside the cluster) or which pods (namespace and labels, for one inside it,
where traffic to a Service reaches the pods behind it and an IP block of the Service address would not match).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# The cluster DNS of kubeadm, kind, GKE, EKS and AKS alike.
DEFAULT_DNS_NAMESPACE = "kube-system"
DEFAULT_DNS_POD_LABELS = {"k8s-app": "kube-dns"}


class EgressNotConfigured(ValueError):
    """The object store is named by a host name and nothing says which addresses or pods it is."""


@dataclass(frozen=True)
class RunEgress:
    """The `egress` rules of the run pods' NetworkPolicy, as the API takes them."""

    rules: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _namespace_peer(namespace: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
    if pod_labels:
        peer["podSelector"] = {"matchLabels": dict(pod_labels)}
    return peer


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    if parts.port is not None:
        return parts.port
    return 443 if parts.scheme == "https" else 80


def run_egress(
    object_store_url: str | None,
    *,
    cidrs: list[str] | None = None,
    namespace: str | None = None,
    pod_labels: dict[str, str] | None = None,
    port: int | None = None,
    dns_namespace: str = DEFAULT_DNS_NAMESPACE,
    dns_pod_labels: dict[str, str] | None = None,
) -> RunEgress:
    """DNS to the cluster's resolver, and the object store (None: no staging, DNS only). Raises
    EgressNotConfigured for a store named by host name with neither `cidrs` nor `namespace`."""
    dns = {
        "to": [_namespace_peer(dns_namespace, DEFAULT_DNS_POD_LABELS if dns_pod_labels is None else dns_pod_labels)],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    if object_store_url is None:
        return RunEgress((dns,))
    store_port = port or _port_of(object_store_url)
    peers: list[dict[str, Any]] = [
        {"ipBlock": {"cidr": str(ipaddress.ip_network(c, strict=False))}} for c in cidrs or []
    ]
    if namespace:
        peers.append(_namespace_peer(namespace, pod_labels or {}))
    if not peers:
        host = urlsplit(object_store_url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise EgressNotConfigured(
                f"the object store {host!r} is a host name, and a NetworkPolicy needs addresses: set "
                "GXWF_RUN_EGRESS_OBJECT_STORE_CIDRS (a store outside the cluster) or "
                "GXWF_RUN_EGRESS_OBJECT_STORE_NAMESPACE and _POD_LABELS (one inside it)"
            ) from None
        peers.append({"ipBlock": {"cidr": f"{address}/{address.max_prefixlen}"}})
    store = {"to": peers, "ports": [{"protocol": "TCP", "port": store_port}]}
    return RunEgress((dns, store))
