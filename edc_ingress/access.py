"""GET /access/{transferProcessId}: where a transfer's consumer reaches its WorkflowApi, once it may.

Authorised like every ingress route (the connector's key). The URL is given only after the negotiation was
finalized, the deployment is ready and the asset registered; otherwise 409 names the step still missing. The
token itself is never here: it went to the connector once, and only its hash is kept.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from edc_ingress.auth import Authenticator
from edc_ingress.problems import Problem
from ports.store import StateStore
from schemas.provisioning import (
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
)

_ENDED = {ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED}


def _missing(tp: str, step: str, detail: str) -> Problem:
    return Problem(
        409,
        "access-not-ready",
        "Access not available yet" if step not in ("failed", "deprovisioned") else "Access not available",
        f"transfer {tp}: {detail}",
        errors=[{"field": "step", "message": step}],
    )


def not_found(tp: str) -> Problem:
    """For a transfer nobody knows and for another connector's alike: the answer tells them apart for no one."""
    return Problem(404, "not-found", "Not found", f"no provisioning for transfer {tp}")


async def access_info(store: StateStore, tp: str, connector: str) -> dict[str, Any]:
    provision = await store.get(ProvisionDocument, tp)
    if provision is None or provision.connector != connector:
        raise not_found(tp)
    if provision.state in _ENDED:
        raise _missing(tp, "deprovisioned", "deprovisioned: its access was revoked")
    if provision.state == ProvisionState.FAILED:
        raise _missing(tp, "failed", f"provisioning failed at {provision.failed_step}: {provision.reason}")
    if provision.agreement_id is None:
        raise _missing(tp, "negotiation", "the contract negotiation is not known to be finalized")
    deployment = await store.get(DeploymentDocument, provision.deployment_id) if provision.deployment_id else None
    if deployment is None or deployment.state != DeploymentState.READY or deployment.workflow_api_url is None:
        raise _missing(tp, "deployment", "the consumer's WorkflowApi is not deployed and ready yet")
    registered = {(a.get("asset_id"), a.get("version")) for a in deployment.registered_assets}
    if (provision.asset_id, provision.asset_version) not in registered:
        raise _missing(tp, "asset", f"asset {provision.asset_id} is not registered with the WorkflowApi yet")
    grant = await store.get(AccessGrantDocument, tp)
    if provision.state != ProvisionState.GRANTED or grant is None or grant.state != AccessState.ACTIVE:
        raise _missing(tp, "access", "the access information is not stored and sent to the connector yet")
    return {
        "transferProcessId": tp,
        "consumerId": provision.edc_consumer_id or provision.consumer_id,
        # Connector and consumer: what the consumer's runs, inputs and results are filed under.
        "tenantId": provision.consumer_id,
        "assetId": provision.asset_id,
        "assetVersion": provision.asset_version,
        "workflowApiUrl": deployment.workflow_api_url,
        "authKey": "Authorization",
        "tokenFingerprint": grant.token_sha256[:8],
    }


def add_access_route(app: FastAPI, auth: Authenticator, store: StateStore) -> None:

    @app.get("/access/{transfer_process_id}", summary="Where the transfer's consumer reaches its WorkflowApi")
    async def access(transfer_process_id: str, request: Request) -> dict[str, Any]:
        connector = await auth.authenticate(request.headers, request.query_params)
        if connector is None:
            raise auth.refusal()
        return await access_info(store, transfer_process_id, connector.name)
