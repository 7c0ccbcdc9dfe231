"""Which configured connector is calling: by its API key (compared in constant time) or by an OAuth2 bearer token
of its token issuer (edc_ingress.bearer)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

import structlog

from edc_ingress.bearer import BearerRefused, BearerVerifier
from edc_ingress.problems import Problem
from schemas.connectors import ConnectorRegistry, EdcConnector

log = structlog.get_logger("gxwf.edc_ingress.auth")

# Compared against when nothing was presented, so a missing key costs the same as a wrong one.
_NOTHING = hashlib.sha256(b"\x00no key presented\x00").digest()


@dataclass(frozen=True)
class _Credential:
    connector: EdcConnector
    header: str
    digest: bytes
    in_query: bool


class Authenticator:
    """Compares sha256 digests with hmac.compare_digest, against every connector, without stopping early:
    neither the secret's length nor which connector matched shows in the response time."""

    def __init__(self, registry: ConnectorRegistry, bearer: BearerVerifier | None = None) -> None:
        self.bearer = bearer if bearer is not None else BearerVerifier(registry)
        self._credentials = tuple(
            _Credential(
                c,
                c.api_key_header.lower(),
                hashlib.sha256(c.api_key.get_secret_value().encode()).digest(),
                c.api_key_in_query,
            )
            for c in registry.connectors
        )

    def identify(self, headers: Mapping[str, str], query: Mapping[str, str]) -> EdcConnector | None:
        """The connector whose secret was presented in its header, or in a query parameter of the same name when
        that connector is configured for it (`api_key_in_query`: stock EDC provisioners cannot add headers to
        their requests, only configure the URL). Any other connector's secret in a query counts for nothing."""
        found: EdcConnector | None = None
        for credential in self._credentials:
            presented = headers.get(credential.header)
            if not presented and credential.in_query:
                presented = query.get(credential.header)
            digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest() if presented else _NOTHING
            if hmac.compare_digest(digest, credential.digest) and found is None:
                found = credential.connector
        return found

    async def authenticate(self, headers: Mapping[str, str], query: Mapping[str, str]) -> EdcConnector | None:
        """The connector by its API key (as `identify`), else by an OAuth2 bearer token its issuer signed."""
        found = self.identify(headers, query)
        if found is not None or not self.bearer.enabled:
            return found
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return await self.bearer.verify(token.strip())
        except BearerRefused as refused:
            log.warning("bearer token refused", reason=str(refused))
            return None

    def refusal(self) -> Problem:
        """The 401 for a request that presented no accepted credential, naming what would be."""
        names = " or ".join(self.header_names)
        challenge = f'ApiKey realm="edc-ingress", header="{self.header_names[0]}"'
        detail = f"missing or wrong API key: send the connector's secret in the {names} header"
        if self.bearer.enabled:
            challenge += ', Bearer realm="edc-ingress"'
            detail += ", or a bearer token of its token issuer"
            names += " or Authorization"
        return Problem(
            401,
            "unauthorized",
            "Unauthorized",
            detail,
            errors=[{"field": names, "message": "missing or wrong"}],
            headers={"WWW-Authenticate": challenge},
        )

    async def close(self) -> None:
        await self.bearer.close()

    @property
    def header_names(self) -> list[str]:
        return sorted({c.header for c in self._credentials})
