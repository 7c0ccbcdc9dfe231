"""OAuth2 client-credentials tokens for callbacks to a connector: fetched from its token endpoint with httpx, kept
until shortly before they expire, one request in flight per connector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

import httpx
import structlog

from ports.edc import EdcError
from schemas.connectors import ClientCredentials, EdcConnector

log = structlog.get_logger("gxwf.token_client")

# Fetched again this long before `expires_in` runs out: a token must not expire on its way to the connector.
REFRESH_MARGIN_SECONDS = 30.0
# When the issuer does not say how long a token lives.
DEFAULT_LIFETIME_SECONDS = 300.0


@dataclass(frozen=True)
class _Cached:
    token: str
    refresh_at: float


class ClientCredentialsTokens:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        margin: float = REFRESH_MARGIN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._margin = margin
        self._clock = clock
        self._cached: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def token(self, connector: EdcConnector) -> str | None:
        """A current access token for `connector`, or None when it has no client credentials configured."""
        credentials = connector.client_credentials()
        if credentials is None:
            return None
        key = f"{connector.name}\n{credentials.token_url}\n{credentials.client_id}"
        cached = self._cached.get(key)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._cached.get(key)  # fetched while this one waited
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.token
            fresh = await self._fetch(connector.name, credentials)
            self._cached[key] = fresh
            return fresh.token

    def forget(self, connector: EdcConnector) -> None:
        """Drop the connector's token (it was refused): the next call fetches a new one."""
        for key in [k for k in self._cached if k.split("\n", 1)[0] == connector.name]:
            del self._cached[key]

    async def _fetch(self, name: str, credentials: ClientCredentials) -> _Cached:
        form = {"grant_type": "client_credentials"}
        if credentials.scope:
            form["scope"] = credentials.scope
        if credentials.audience:
            form["audience"] = credentials.audience
        secret = credentials.client_secret.get_secret_value()
        started = self._clock()
        try:
            response = await self._http.post(
                credentials.token_url,
                data=form,
                auth=httpx.BasicAuth(quote_plus(credentials.client_id), quote_plus(secret)),  # RFC 6749 2.3.1
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as error:
            raise EdcError("token", f"{credentials.token_url}: {type(error).__name__}", retryable=True) from None
        if response.status_code != 200:
            log.warning("token refused", connector=name, status=response.status_code, body=response.text[:200])
            raise EdcError(
                "token",
                f"{credentials.token_url} answered {response.status_code}",
                status=response.status_code,
                retryable=response.status_code >= 500,
            )
        try:
            body = response.json()
            token = body["access_token"]
            lifetime = float(body.get("expires_in", DEFAULT_LIFETIME_SECONDS))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise EdcError("token", f"{credentials.token_url}: no access_token in the answer") from None
        if not isinstance(token, str) or not token:
            raise EdcError("token", f"{credentials.token_url}: no access_token in the answer")
        return _Cached(token, started + max(0.0, lifetime - self._margin))
