"""Bearer tokens: the sha256 of the token names an access grant; the grant names the consumer.

A revoked grant (its transfer was deprovisioned or its end requested) no longer authenticates. Only when the
operator grants a grace period (GXWF_WORKFLOW_API_REVOKED_GRACE_SECONDS, default 0) does it stay readable for that
long after the revocation: runs, logs and results, nothing else (no uploads, no starts, no stops). The principal
cache carries the grace's end, so a cached answer never outlives it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from events.envelope import utcnow
from schemas.provisioning import (
    AccessGrantDocument,
    AccessState,
    DeploymentDocument,
    DeploymentState,
    ProvisionDocument,
    ProvisionState,
)
from workflow_api.context import ApiContext
from workflow_api.principals import Principal
from workflow_api.problems import Problem

bearer = HTTPBearer(auto_error=False, description="The token the connector handed over (`Bearer <token>`)")

_BEARER = Depends(bearer)
_ENDED = {ProvisionState.DEPROVISIONING, ProvisionState.DEPROVISIONED}


def _unauthorized(detail: str) -> Problem:
    return Problem(
        401,
        "unauthorized",
        detail,
        errors=[{"field": "Authorization", "message": detail}],
        headers={"WWW-Authenticate": 'Bearer realm="workflow-api"'},
    )


def api(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


async def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None = _BEARER) -> Principal:
    context = api(request)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token: send Authorization: Bearer <token>")
    digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
    cached = context.principals.get(digest)
    if cached is not None:
        return _within_grace(cached)
    grant = await context.queries.grant_by_token(digest)
    # The lookup found a candidate by its hash; the comparison that decides is constant-time.
    if grant is None or not hmac.compare_digest(grant.token_sha256, digest):
        raise _unauthorized("unknown or wrong bearer token")
    scope = context.settings.consumer_id
    if scope is not None and grant.consumer_id != scope:
        raise _unauthorized("unknown or wrong bearer token")
    reason: str | None = None
    provision = await context.store.get(ProvisionDocument, grant.transfer_process_id)
    if grant.state == AccessState.REVOKED or (provision is not None and provision.state in _ENDED):
        reason = (provision.deprovision_reason if provision else None) or (
            f"transfer {grant.transfer_process_id} {provision.state if provision else 'ended'}"
        )
    elif provision is not None and provision.deprovision_requested:
        reason = provision.deprovision_reason or "deprovisioning requested"
    readable_until: datetime | None = None
    if reason is not None:
        grace = timedelta(seconds=context.settings.workflow_api_revoked_grace_seconds)
        readable_until = _revoked_at(grant, provision) + grace
    principal = Principal(grant.consumer_id, grant.id, reason, readable_until)
    context.principals.put(digest, principal)
    return _within_grace(principal)


def _within_grace(principal: Principal) -> Principal:
    if principal.readable_until is not None and utcnow() >= principal.readable_until:
        raise _unauthorized(f"this access was deprovisioned ({principal.deprovisioned}); its token is revoked")
    return principal


def _revoked_at(grant: AccessGrantDocument, provision: ProvisionDocument | None) -> datetime:
    """When the access ended: the earliest of the grant's revocation and the provision's end (or, when only its
    end was requested so far, its last change)."""
    times = [h.at for h in grant.history if h.to == AccessState.REVOKED]
    if grant.state == AccessState.REVOKED and not times:
        times.append(grant.updated_at)
    if provision is not None:
        ended = [h.at for h in provision.history if h.to in _ENDED]
        times.extend(
            ended or ([provision.updated_at] if provision.deprovision_requested or provision.state in _ENDED else [])
        )
    return min(times, default=utcnow())


AUTHENTICATED = Depends(authenticate)


async def visible_assets(context: ApiContext, principal: Principal) -> set[tuple[str, int]]:
    """The asset versions registered for this consumer: those of its ready deployments, and of its granted
    provisions (a consumer with several transfers sees the assets of each one that is active)."""
    if principal.deprovisioned is not None:
        return set()
    found: set[tuple[str, int]] = set()
    grants = await context.store.find(
        AccessGrantDocument, consumer_id=principal.consumer_id, states=[AccessState.ACTIVE]
    )
    for grant in grants:
        provision = await context.store.get(ProvisionDocument, grant.transfer_process_id)
        if provision is None or provision.state != ProvisionState.GRANTED:
            continue
        if provision.asset_id and provision.asset_version:
            found.add((provision.asset_id, provision.asset_version))
        if provision.deployment_id:
            deployment = await context.store.get(DeploymentDocument, provision.deployment_id)
            if deployment is not None and deployment.state == DeploymentState.READY:
                for item in deployment.registered_assets:
                    if isinstance(item.get("asset_id"), str) and isinstance(item.get("version"), int):
                        found.add((item["asset_id"], item["version"]))
    return found
