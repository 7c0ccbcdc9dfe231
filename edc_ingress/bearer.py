"""OAuth2 bearer tokens (JWTs) of a connector's token issuer, verified against the issuer's JWKS with PyJWT."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog

from schemas.connectors import ConnectorRegistry, EdcConnector

log = structlog.get_logger("gxwf.edc_ingress.bearer")

# Only asymmetric algorithms: a JWKS publishes public keys, and an HS* token "signed" with one is a forgery.
_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
LEEWAY_SECONDS = 30


class BearerRefused(Exception):
    """Why a bearer token was not accepted (logged; the caller only learns 401)."""


def _algorithm(jwk: dict[str, Any]) -> str | None:
    """What the key is for: its `alg` when it names one, else what its type implies."""
    alg = jwk.get("alg")
    if isinstance(alg, str):
        return alg if alg in _ALGORITHMS else None
    kty = jwk.get("kty")
    if kty == "RSA":
        return "RS256"
    if kty == "EC":
        return _CURVES.get(str(jwk.get("crv")))
    if kty == "OKP" and jwk.get("crv") in ("Ed25519", "Ed448"):
        return "EdDSA"
    return None


class Jwks:
    """One issuer's keys: fetched with httpx, kept for `ttl` seconds, fetched again for an unknown `kid` (a
    rotation), but for unknown kids at most once every `min_refetch` seconds (a flood of made-up kids must not
    flood the issuer); one fetch in flight at a time."""

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        ttl: float = 300.0,
        min_refetch: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._http = http
        self._ttl = ttl
        self._min_refetch = min_refetch
        self._clock = clock
        self._keys: dict[str, tuple[jwt.PyJWK, str]] = {}
        self._fetched_at: float | None = None
        self._unknown_refetch_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> tuple[jwt.PyJWK, str]:
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at > self._ttl:
            await self._refresh(force=True)
        elif self._find(kid) is None and (
            self._unknown_refetch_at is None or now - self._unknown_refetch_at >= self._min_refetch
        ):
            self._unknown_refetch_at = now
            await self._refresh(force=False)
        found = self._find(kid)
        if found is None:
            raise BearerRefused(f"no key {kid!r} in {self.url}")
        return found

    def _find(self, kid: str | None) -> tuple[jwt.PyJWK, str] | None:
        if kid is None:
            # Without a kid only an issuer with a single key is unambiguous.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self, *, force: bool) -> None:
        del force  # both kinds wait for a fetch already in flight rather than start another
        fetched_before = self._fetched_at
        async with self._lock:
            if self._fetched_at != fetched_before:
                return  # another request fetched while this one waited
            self._fetched_at = self._clock()
            try:
                response = await self._http.get(self.url)
                response.raise_for_status()
                document = response.json()
            except (httpx.HTTPError, ValueError) as error:
                log.warning("jwks unavailable", url=self.url, error=str(error))
                return  # keep the keys known so far
            self._keys = _parse(document, self.url)


def _parse(document: Any, url: str) -> dict[str, tuple[jwt.PyJWK, str]]:
    keys: dict[str, tuple[jwt.PyJWK, str]] = {}
    entries = document.get("keys") if isinstance(document, dict) else None
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        algorithm = _algorithm(entry)
        if algorithm is None:
            continue  # symmetric ("oct") keys and unknown algorithms never verify anything
        try:
            key = jwt.PyJWK(entry, algorithm)
        except jwt.PyJWTError as error:
            log.warning("jwks key skipped", url=url, error=str(error))
            continue
        keys[str(entry.get("kid", f"#{index}"))] = (key, algorithm)
    return keys


class BearerVerifier:
    """The connector whose issuer signed a bearer token, with iss, aud, exp, nbf and (when configured) sub
    checked. A token whose issuer no connector with a JWKS names is refused."""

    def __init__(self, registry: ConnectorRegistry, http: httpx.AsyncClient | None = None) -> None:
        self._connectors = tuple(c for c in registry.connectors if c.jwks_url is not None)
        # Only a deployment that takes tokens holds a client (and so needs closing).
        self._http = http or (httpx.AsyncClient(timeout=5.0, follow_redirects=False) if self._connectors else None)
        self._jwks: dict[str, Jwks] = {}
        for connector in self._connectors:
            url = str(connector.jwks_url)
            if self._http is not None:
                self._jwks.setdefault(url, Jwks(url, self._http))

    @property
    def enabled(self) -> bool:
        return bool(self._connectors)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def verify(self, token: str) -> EdcConnector:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as error:
            raise BearerRefused(f"not a JWT: {error}") from None
        issuer = unverified.get("iss")
        candidates = [c for c in self._connectors if c.token_issuer == issuer]
        if not candidates:
            raise BearerRefused(f"no connector takes tokens of issuer {issuer!r}")
        reasons = []
        for connector in candidates:
            try:
                await self._check(connector, token, header)
                return connector
            except (BearerRefused, jwt.PyJWTError) as error:
                reasons.append(f"{connector.name}: {error}")
        raise BearerRefused("; ".join(reasons))

    async def _check(self, connector: EdcConnector, token: str, header: dict[str, Any]) -> None:
        kid = header.get("kid")
        key, algorithm = await self._jwks[str(connector.jwks_url)].key(kid if isinstance(kid, str) else None)
        if header.get("alg") != algorithm:
            raise BearerRefused(f"alg {header.get('alg')!r}, the key is for {algorithm}")
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=connector.token_audience,
            issuer=connector.token_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud"]},
        )
        if connector.token_subject is not None and claims.get("sub") != connector.token_subject:
            raise BearerRefused(f"sub {claims.get('sub')!r} is not {connector.token_subject!r}")
