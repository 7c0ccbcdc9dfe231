"""The EDC client over HTTP (httpx): management API v2 to v4 reads, provisioner callbacks of both generations.

5xx answers and network errors are retried with backoff; a 4xx is not (the request itself is wrong, and EDC
would answer the same again). Every attempt is recorded in the call log.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import structlog

from adapters.callback_policy import CallbackRefused, check_callback, check_callback_address, origin
from adapters.token_client import ClientCredentialsTokens
from ports.edc import (
    AccessAddress,
    AgreementInfo,
    EdcCallbackRefused,
    EdcCallLog,
    EdcError,
    EdcNotConfigured,
    EdcNotFound,
    ProvisionTarget,
    TransferProcessInfo,
)
from schemas.connectors import ConnectorRegistry, EdcConnector, ManagementApi
from schemas.edc_calls import CallOutcome, EdcCall

log = structlog.get_logger("gxwf.edc_client")

EDC_NAMESPACE = "https://w3id.org/edc/v0.0.1/ns/"
DPS_HTTP_PULL = "https://w3id.org/dspace-sig/profile/http-pull"
Sleep = Callable[[float], Awaitable[None]]
# Where the management API of a connector configured without one is at the moment (a trial's simulator).
ManagementLookup = Callable[[EdcConnector], ManagementApi | None]


class HttpEdcClient:
    def __init__(
        self,
        registry: ConnectorRegistry,
        calls: EdcCallLog,
        *,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: Sequence[float] = (0.2, 0.5, 1.0, 2.0, 5.0),
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        management_lookup: ManagementLookup | None = None,
    ) -> None:
        self.registry = registry
        self.management_lookup = management_lookup
        self.calls = calls
        self.attempts = attempts
        self.backoff = tuple(backoff) or (0.0,)
        self._sleep = sleep
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)
        self.tokens = ClientCredentialsTokens(self._http)

    async def close(self) -> None:
        await self._http.aclose()

    # -- management API ------------------------------------------------------------------------------------

    async def transfer_process(self, connector: str, transfer_process_id: str) -> TransferProcessInfo:
        body = await self._management(connector, "transferprocesses", transfer_process_id, "transfer_process")
        return TransferProcessInfo(
            id=str(_prop(body, "@id") or transfer_process_id),
            state=_text(_prop(body, "state")),
            asset_id=_text(_prop(body, "assetId")),
            contract_id=_text(_prop(body, "contractId")),
            type=_text(_prop(body, "type")),
            correlation_id=_text(_prop(body, "correlationId")),
        )

    async def contract_agreement(self, connector: str, agreement_id: str) -> AgreementInfo:
        body = await self._management(connector, "contractagreements", agreement_id, "contract_agreement")
        signed = _prop(body, "contractSigningDate")
        return AgreementInfo(
            id=str(_prop(body, "@id") or agreement_id),
            asset_id=_text(_prop(body, "assetId")),
            consumer_id=_text(_prop(body, "consumerId")),
            provider_id=_text(_prop(body, "providerId")),
            signed_at=_epoch_seconds(signed),
        )

    def management_api(self, connector: EdcConnector) -> ManagementApi | None:
        """The configured management API; only without one, what the lookup knows (read on every call, so a
        simulator started later is found)."""
        configured = connector.management()
        if configured is not None or self.management_lookup is None:
            return configured
        return self.management_lookup(connector)

    async def _management(self, name: str, collection: str, item: str, operation: str) -> dict[str, Any]:
        connector = self._connector(name)
        api = self.management_api(connector)
        if api is None:
            raise EdcNotConfigured(operation, f"connector {name!r} has no management_url configured")
        url = f"{api.url}/{api.api_version}/{collection}/{quote(item, safe='')}"
        headers = _management_auth(api, url)
        response = await self._call(connector, operation, "GET", url, headers=headers, tp=item, bearer=False)
        try:
            body = response.json()
        except ValueError:
            raise EdcError(operation, f"{url}: answer is not JSON", status=response.status_code) from None
        if not isinstance(body, dict):
            raise EdcError(operation, f"{url}: answer is not a JSON object", status=response.status_code)
        return body

    # -- provisioner callbacks -----------------------------------------------------------------------------

    async def provisioned(self, target: ProvisionTarget, access: AccessAddress, *, resource_name: str) -> None:
        connector = self._connector(target.connector)
        base = target.callback_address.rstrip("/")
        tp = target.transfer_process_id
        if target.generation == "dps":
            address = {
                "@type": "DataAddress",
                "endpointType": DPS_HTTP_PULL,
                "endpoint": access.base_url,
                "endpointProperties": [
                    {"@type": "EndpointProperty", "name": "authorization", "value": access.token},
                    {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
                ],
            }
            await self._signal(connector, target, "started", {"state": "STARTED", "dataAddress": address})
            return
        if target.generation == "data-plane-provision-http":
            # The data plane's provision API has no auth filter; its path names the flow and the resource.
            url = f"{base}/{quote(target.flow_id or tp, safe='')}/{quote(_resource(target), safe='')}/provision"
            await self._allowed(connector, "provisioned", target, url)
            body: dict[str, Any] = {"dataAddress": {"properties": access.properties()}}
            await self._call(connector, "provisioned", "POST", url, json=body, tp=tp)
            return
        url = f"{base}/{quote(tp, safe='')}/provision"
        await self._allowed(connector, "provisioned", target, url)
        body = {
            "edctype": "dataspaceconnector:provisioner-callback-request",
            "resourceDefinitionId": target.resource_definition_id,
            "assetId": target.asset_id,
            "resourceName": resource_name,
            "contentDataAddress": {"properties": access.properties()},
            "apiKeyJwt": "unused",
            "hasToken": False,
        }
        # The control-plane callback lives in the management API context and needs its key.
        headers = self._callback_auth(connector, url)
        await self._call(connector, "provisioned", "POST", url, json=body, headers=headers, tp=tp)

    async def deprovisioned(
        self, target: ProvisionTarget, *, provisioned_resource_id: str | None = None, error: str | None = None
    ) -> None:
        connector = self._connector(target.connector)
        base = target.callback_address.rstrip("/")
        tp = target.transfer_process_id
        if target.generation == "dps":
            # The control plane ended the flow itself (terminate, completed): it waits for no answer. Only a
            # provisioning that failed is told, as the flow's error.
            if error is not None:
                await self._signal(connector, target, "errored", {"state": "TERMINATED", "error": error})
            return
        if target.generation == "data-plane-provision-http":
            url = f"{base}/{quote(target.flow_id or tp, safe='')}/{quote(_resource(target), safe='')}/deprovision"
            await self._allowed(connector, "deprovisioned", target, url)
            await self._call(connector, "deprovisioned", "POST", url, tp=tp)
            return
        url = f"{base}/{quote(tp, safe='')}/deprovision"
        await self._allowed(connector, "deprovisioned", target, url)
        body = {
            "provisionedResourceId": provisioned_resource_id or target.resource_definition_id or tp,
            "inProcess": False,
            "error": error is not None,
            "errorMessage": error,
        }
        headers = self._callback_auth(connector, url)
        await self._call(connector, "deprovisioned", "POST", url, json=body, headers=headers, tp=tp)

    async def _signal(self, connector: EdcConnector, target: ProvisionTarget, kind: str, body: dict[str, Any]) -> None:
        """A Data Plane Signaling callback: `POST {signaling}/transfers/{id}/dataflow/{kind}`. A 409 is retried
        like a 5xx: the control plane answers it while its side of the transfer is not ready yet."""
        tp = target.transfer_process_id
        url = f"{target.callback_address.rstrip('/')}/transfers/{quote(tp, safe='')}/dataflow/{kind}"
        await self._allowed(connector, kind, target, url)
        message = {"messageId": str(uuid.uuid4()), "dataFlowId": tp, **body}
        await self._call(connector, kind, "POST", url, json=message, tp=tp, retry_conflict=True)

    def callback_bases(self, connector: EdcConnector) -> tuple[str, ...]:
        """Where this connector may be called back: its configured bases, else its management API's origin
        (configured or registered); none when neither is known, and then nobody is called back. Its signaling
        URL (Data Plane Signaling) always."""
        signaling = (connector.signaling_url,) if connector.signaling_url else ()
        if connector.callback_urls:
            return (*connector.callback_urls, *signaling)
        api = self.management_api(connector)
        return ((origin(api.url),) if api is not None else ()) + signaling

    async def verify_callback(self, target: ProvisionTarget) -> None:
        """EdcCallbackRefused (recorded) when the target's address could never be called back."""
        connector = self._connector(target.connector)
        await self._allowed(connector, "provisioned", target, target.callback_address)

    async def _allowed(self, connector: EdcConnector, operation: str, target: ProvisionTarget, url: str) -> None:
        """Refused, recorded and logged unless `url` lies under one of the connector's callback bases."""
        try:
            check_callback_address(target.callback_address)
            check_callback(url, self.callback_bases(connector))
        except CallbackRefused as refused:
            reason = str(refused)
            tp = target.transfer_process_id
            log.warning("callback refused", connector=connector.name, transfer=tp, reason=reason)
            await self._record(
                connector, operation, "POST", url, tp, 1, True, "refused", None, reason, time.perf_counter()
            )
            raise EdcCallbackRefused(operation, reason) from None

    async def callback_headers(self, connector: EdcConnector, url: str) -> dict[str, str]:
        """`Authorization: Bearer` with the connector's client-credentials token, when it has them configured and
        `url` lies under its callback bases (the token never follows an address a request chose); else none.
        `_call` adds it to every call but management API reads."""
        if connector.client_credentials() is None:
            return {}
        try:
            check_callback(url, self.callback_bases(connector))
        except CallbackRefused:
            return {}
        token = await self.tokens.token(connector)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _callback_auth(self, connector: EdcConnector, url: str) -> dict[str, str]:
        """A configured key goes with every control-plane callback, as the operator set it up (with or without
        a management URL); a registered one only to callbacks below its management API. Callers have checked
        `url` against the connector's callback bases: the key never follows an address a request chose."""
        if connector.management_api_key is not None:
            return {connector.management_api_key_header: connector.management_api_key.get_secret_value()}
        return _management_auth(self.management_api(connector), url)

    # -- the one place that talks HTTP ---------------------------------------------------------------------

    def _connector(self, name: str) -> EdcConnector:
        try:
            return self.registry.get(name)
        except KeyError as error:
            raise EdcError("connector", str(error.args[0])) from None

    async def _call(
        self,
        connector: EdcConnector,
        operation: str,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        tp: str | None = None,
        bearer: bool = True,
        retry_conflict: bool = False,
    ) -> httpx.Response:
        """`bearer`: add the connector's OAuth2 token (callback_headers) when it has one."""
        for attempt in range(1, self.attempts + 1):
            last = attempt == self.attempts
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            response: httpx.Response | None = None
            token_failure: str | None = None
            try:
                sent = {**(headers or {}), **(await self.callback_headers(connector, url) if bearer else {})}
                response = await self._http.request(method, url, json=json, headers=sent)
                status = response.status_code
                if status == 401 and "Authorization" in sent:
                    self.tokens.forget(connector)  # a revoked or rotated token: the next attempt gets another
                outcome: CallOutcome = "ok" if status < 300 else "client_error" if status < 500 else "server_error"
                if outcome != "ok":
                    error = response.text[:500]
            except httpx.TransportError as failure:
                outcome, error = "network_error", f"{type(failure).__name__}: {failure}"[:500]
            except EdcError as failure:  # no token from the connector's token endpoint
                status = failure.status
                outcome = "network_error" if failure.retryable else "client_error"
                error = token_failure = str(failure)[:500]
            conflict = retry_conflict and status == 409
            retry = (outcome in ("server_error", "network_error") or conflict) and not last
            await self._record(
                connector, operation, method, url, tp, attempt, not retry, outcome, status, error, started
            )
            if outcome == "ok" and response is not None:
                return response
            if not retry:
                kind = EdcNotFound if status == 404 else EdcError
                retryable = outcome in ("server_error", "network_error")
                raise kind(
                    operation,
                    f"{method} {_public(url)}: {token_failure or status or error}",
                    status=status,
                    retryable=retryable,
                )
            await self._sleep(self.backoff[min(attempt, len(self.backoff)) - 1])
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _record(
        self,
        connector: EdcConnector,
        operation: str,
        method: str,
        url: str,
        tp: str | None,
        attempt: int,
        final: bool,
        outcome: CallOutcome,
        status: int | None,
        error: str | None,
        started: float,
    ) -> None:
        call = EdcCall(
            id=str(uuid.uuid4()),
            connector=connector.name,
            operation=operation,
            method=method,
            url=_public(url),
            transfer_process_id=tp,
            attempt=attempt,
            final=final,
            outcome=outcome,
            status=status,
            error=error,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        try:
            await self.calls.record(call)
        except Exception as failure:  # an unrecorded call must not turn into a failed provisioning
            log.warning("edc call not recorded", error=repr(failure), call=call.model_dump(mode="json"))


def _management_auth(api: ManagementApi | None, url: str) -> dict[str, str]:
    """The management key for `url`. A registered key goes only below its own management URL: a callback
    address comes from a request, and must not draw a key to wherever it points."""
    if api is None or api.key is None or (api.registered and not api.covers(url)):
        return {}
    return {api.key_header: api.key.get_secret_value()}


def _resource(target: ProvisionTarget) -> str:
    return target.provision_resource_id or target.resource_definition_id or target.transfer_process_id


def _public(url: str) -> str:
    """Without query string or user info: an endpoint URL may carry a credential there."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
    except ValueError:  # a refused address from a request may not even parse
        return url.split("//", 1)[0] + "//(unparseable)"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _prop(body: dict[str, Any], name: str) -> Any:
    """A property of a compacted JSON-LD answer, whichever way this EDC version spelled it."""
    for key in (name, f"edc:{name}", f"{EDC_NAMESPACE}{name}"):
        if key in body:
            value = body[key]
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, dict) and "@value" in value:
                value = value["@value"]
            if isinstance(value, dict) and "@id" in value and len(value) == 1:
                value = value["@id"]
            return value
    return None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _epoch_seconds(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None
