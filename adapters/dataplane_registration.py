"""Registering the ingress as an external data plane at a connector's management API (EDC 0.18 and later):
`PUT {management}/v4/dataplanes`, which replaces a registration of the same id, so registering again is a no-op."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from schemas.connectors import EdcConnector, ManagementApi

# What EDC's data plane selection matches a transfer's type against: a consumer pulling over HTTP.
DEFAULT_TRANSFER_TYPES = ("HttpData-PULL",)
MASK = "********"


@dataclass(frozen=True)
class Registration:
    dataplane_id: str
    endpoint: str
    transfer_types: tuple[str, ...]
    labels: tuple[str, ...]
    connector: EdcConnector

    def body(self, *, show_secrets: bool = False) -> dict[str, Any]:
        """The request body; the client secret masked unless `show_secrets`."""
        body: dict[str, Any] = {
            "dataplaneId": self.dataplane_id,
            "endpoint": self.endpoint,
            "transferTypes": list(self.transfer_types),
            "labels": list(self.labels),
        }
        credentials = self.connector.client_credentials()
        if credentials is not None:
            # How the control plane gets tokens for its calls to us, and verifies the ones on our callbacks.
            authorization: dict[str, Any] = {
                "type": "oauth2_client_credentials",
                "tokenEndpoint": credentials.token_url,
                "clientId": credentials.client_id,
                "clientSecret": credentials.client_secret.get_secret_value() if show_secrets else MASK,
            }
            if self.connector.jwks_url is not None:
                authorization["jwksUri"] = self.connector.jwks_url
            body["authorization"] = authorization
        return body


@dataclass(frozen=True)
class RegistrationAnswer:
    url: str
    status: int
    body: Any


class RegistrationFailed(Exception):
    """The management API could not be reached or refused the registration (the message says which)."""


def dataplanes_url(api: ManagementApi, api_version: str = "v4") -> str:
    return f"{api.url}/{api_version}/dataplanes"


async def register_dataplane(
    api: ManagementApi,
    registration: Registration,
    *,
    api_version: str = "v4",
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RegistrationAnswer:
    url = dataplanes_url(api, api_version)
    headers = {api.key_header: api.key.get_secret_value()} if api.key is not None else {}
    async with httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False) as http:
        try:
            response = await http.put(url, json=registration.body(show_secrets=True), headers=headers)
        except httpx.TransportError as error:
            raise RegistrationFailed(f"PUT {url}: {type(error).__name__}: {error}") from None
    try:
        answer: Any = response.json() if response.content else None
    except ValueError:
        answer = response.text[:500]
    if response.status_code >= 300:
        detail = _edc_message(answer) or (response.text[:200] if response.content else "")
        raise RegistrationFailed(f"PUT {url}: {response.status_code} {detail}".rstrip())
    return RegistrationAnswer(url, response.status_code, answer)


def _edc_message(answer: Any) -> str | None:
    """EDC answers errors as a list of {message, type, ...}."""
    if isinstance(answer, list) and answer and isinstance(answer[0], dict):
        message = answer[0].get("message")
        return str(message) if message else None
    return None
