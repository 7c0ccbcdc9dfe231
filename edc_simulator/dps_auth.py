"""OAuth2 between a simulated control plane and the data plane it registered, as EDC's
data-plane-signaling-oauth2 extension does it (eclipse-edc/Connector,
data-protocols/data-plane-signaling/data-plane-signaling-oauth2, Oauth2CredentialsSignalingAuthorization).

The data plane's registration carries an `authorization` profile of type `oauth2_client_credentials`
(`tokenEndpoint`, `clientId`, `clientSecret`, and `jwksUri` or an inline `jwks`). The control plane gets a token
there with the client-credentials grant for every message it sends the data plane, and accepts a signaling
callback only with a bearer JWT that its keys signed, unexpired, whose `sub` is the data plane's id
(DataPlaneTransferAuthorizationFilter).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials"
# Fetched again this long before a token expires.
_MARGIN_SECONDS = 30.0


class TokenUnavailable(Exception):
    """The token endpoint of the registered profile gave no token (the message says why)."""


def oauth2_profile(authorization: Any) -> dict[str, Any] | None:
    """The registration's authorization profile when it is one this control plane speaks."""
    if isinstance(authorization, dict) and authorization.get("type") == OAUTH2_CLIENT_CREDENTIALS:
        return authorization
    return None


@dataclass
class ProfileTokens:
    """Tokens for the control plane's messages to data planes, one per profile, kept until shortly before expiry."""

    http: httpx.AsyncClient
    _cached: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)

    async def token(self, profile: dict[str, Any]) -> str:
        endpoint, client = str(profile.get("tokenEndpoint")), str(profile.get("clientId"))
        cached = self._cached.get((endpoint, client))
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        # EDC's Oauth2Client sends the client's id and secret in the form (client_secret_post).
        form = {
            "grant_type": "client_credentials",
            "client_id": client,
            "client_secret": str(profile.get("clientSecret")),
        }
        try:
            response = await self.http.post(endpoint, data=form)
        except httpx.HTTPError as error:
            raise TokenUnavailable(f"{endpoint}: {type(error).__name__}") from None
        if response.status_code != 200:
            raise TokenUnavailable(f"{endpoint} answered {response.status_code}: {response.text[:200]}")
        body = response.json()
        token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 300))
        self._cached[(endpoint, client)] = (token, time.monotonic() + max(0.0, lifetime - _MARGIN_SECONDS))
        return token


async def refusal(
    http: httpx.AsyncClient, profile: dict[str, Any], header: str | None, dataplane_id: str
) -> str | None:
    """Why a signaling callback's Authorization header is refused under the data plane's profile; None: accepted."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "no bearer token"
    try:
        keys = await _keys(http, profile)
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in keys.keys if kid is None or k.key_id == kid), None)
        if key is None:
            return f"signed with a key its JWKS does not hold (kid {kid})"
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            options={"verify_aud": False, "require": ["exp", "sub"]},
        )
    except (jwt.PyJWTError, httpx.HTTPError, ValueError, KeyError) as error:
        return f"{type(error).__name__}: {error}"[:200]
    if claims.get("sub") != dataplane_id:
        return f"sub {claims.get('sub')!r} is not the data plane {dataplane_id!r}"
    return None


async def _keys(http: httpx.AsyncClient, profile: dict[str, Any]) -> jwt.PyJWKSet:
    inline = profile.get("jwks")
    if isinstance(inline, dict):
        return jwt.PyJWKSet.from_dict(inline)
    uri = profile.get("jwksUri")
    if not isinstance(uri, str):
        raise ValueError("the profile has neither jwksUri nor jwks")
    response = await http.get(uri)
    response.raise_for_status()
    return jwt.PyJWKSet.from_dict(response.json())
