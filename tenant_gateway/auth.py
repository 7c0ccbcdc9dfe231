"""Bearer tokens minted by the deployment handler: the mac decides, then the deployment it names, while it is live."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from http_serving.problems import ProblemDetails
from schemas import tenant_gateway
from schemas.provisioning import DeploymentDocument, DeploymentState
from tenant_gateway.context import GatewayContext
from tenant_gateway.tenancy import Tenant

bearer = HTTPBearer(auto_error=False, description="The WorkflowApi's token (GXWF_WORKFLOW_API_GATEWAY_TOKEN)")

_BEARER = Depends(bearer)
_LIVE = {DeploymentState.REQUESTED, DeploymentState.DEPLOYING, DeploymentState.READY}


def gateway(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


def _unauthorized(detail: str) -> ProblemDetails:
    return ProblemDetails(
        401,
        "unauthorized",
        None,
        detail,
        errors=[{"field": "Authorization", "message": detail}],
        headers={"WWW-Authenticate": 'Bearer realm="tenant-gateway"'},
    )


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None = _BEARER) -> Tenant:
    context = gateway(request)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token: send Authorization: Bearer <token>")
    token = credentials.credentials
    cached = context.tenants.get(token)
    if cached is not None:
        return cached
    deployment_id = tenant_gateway.verified_deployment(context.key, token)
    if deployment_id is None:
        raise _unauthorized("unknown or wrong bearer token")
    deployment = await context.store.get(DeploymentDocument, deployment_id)
    if deployment is None or deployment.state not in _LIVE:
        # A deleted deployment's WorkflowApi is gone; whoever still holds its token gets nothing.
        raise _unauthorized("unknown or wrong bearer token")
    tenant = Tenant(deployment.consumer_id, deployment.id, deployment.transfer_process_id)
    context.tenants.put(token, tenant)
    return tenant


TENANT = Depends(authenticate)
