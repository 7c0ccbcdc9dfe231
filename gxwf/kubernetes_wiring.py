"""What the Kubernetes backends are told from the settings: the run pods' egress, and what per-consumer WorkflowApis
need to reach their tenant gateway. Each missing or bad setting is a one-line configuration error."""

from __future__ import annotations

from adapters.kubernetes_compute.egress import EgressNotConfigured, RunEgress, run_egress
from gxwf.errors import UserError
from gxwf.settings import Settings


def run_egress_of(settings: Settings, object_store_url: str) -> RunEgress:
    """Where run pods may connect to; a store named by host name without its addresses or pods is a config error."""
    try:
        return run_egress(
            object_store_url,
            cidrs=settings.run_egress_object_store_cidrs,
            namespace=settings.run_egress_object_store_namespace,
            pod_labels=settings.run_egress_object_store_pod_labels,
            port=settings.run_egress_object_store_port,
            dns_namespace=settings.run_egress_dns_namespace,
            dns_pod_labels=settings.run_egress_dns_pod_labels,
        )
    except EgressNotConfigured as error:
        raise UserError(str(error)) from None
    except ValueError as error:
        raise UserError(f"GXWF_RUN_EGRESS_OBJECT_STORE_CIDRS: {error}") from None


def workflow_api_settings(settings: Settings) -> tuple[tuple[str, str], ...]:
    """What a per-consumer WorkflowApi on a Kubernetes site is told besides its consumer and token: where the
    tenant gateway is. No server URL or credential: those would reach every consumer's data."""
    if not settings.tenant_gateway_url:
        raise UserError(
            "GXWF_TENANT_GATEWAY_URL: required when a Kubernetes site deploys per-consumer WorkflowApis "
            "(where they reach the tenant gateway, `gxwf tenant-gateway`)"
        )
    return (("GXWF_WORKFLOW_API_GATEWAY_URL", settings.tenant_gateway_url),)


def gateway_key(settings: Settings) -> str:
    if settings.gateway_key is None or not settings.gateway_key.get_secret_value():
        raise UserError(
            "GXWF_GATEWAY_KEY: required when a Kubernetes site deploys per-consumer WorkflowApis "
            "(the key their tenant gateway tokens are minted with; the tenant gateway needs the same)"
        )
    return settings.gateway_key.get_secret_value()
