"""Which configured connector is calling, decided in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from schemas.connectors import ConnectorRegistry, EdcConnector

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

    def __init__(self, registry: ConnectorRegistry) -> None:
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

    @property
    def header_names(self) -> list[str]:
        return sorted({c.header for c in self._credentials})
