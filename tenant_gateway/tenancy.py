"""Who asks (the tenant a token names) and what of the installation's data is that tenant's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote

from http_serving.problems import ProblemDetails


@dataclass(frozen=True)
class Tenant:
    consumer_id: str
    deployment_id: str
    transfer_process_id: str

    def prefixes(self, *, writing: bool = False) -> tuple[str, ...]:
        """The object keys of this consumer's inputs and results (schemas.names.input_prefix/result_prefix); a
        WorkflowApi writes inputs only, results are the results handler's."""
        quoted = quote(self.consumer_id, safe="")
        inputs = f"inputs/{quoted}/"
        return (inputs,) if writing else (inputs, f"results/{quoted}/")


class TenantCache:
    """Tenants by token for a second or so: a WorkflowApi's request is several gateway calls. Bounded."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: dict[str, tuple[float, Tenant]] = {}

    def get(self, token: str) -> Tenant | None:
        entry = self._entries.get(token)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, tenant: Tenant) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token] = (time.monotonic() + self.seconds, tenant)


def not_found(what: str, name: str) -> ProblemDetails:
    # The same answer for another tenant's as for an unknown one: nothing tells them apart.
    return ProblemDetails(404, "not-found", None, f"no {what} {name}", errors=[{"field": what, "message": "not found"}])


def forbidden(field: str, message: str) -> ProblemDetails:
    return ProblemDetails(403, "other-tenant", None, message, errors=[{"field": field, "message": message}])


def invalid(field: str, message: str) -> ProblemDetails:
    return ProblemDetails(
        422, "invalid-request", None, f"{field}: {message}", errors=[{"field": field, "message": message}]
    )


def check_key(tenant: Tenant, key: str, field: str = "key", *, writing: bool = False) -> str:
    """The key, if it lies under one of the tenant's prefixes and cannot be read as climbing out of it."""
    segments = key.split("/")
    if any(part in {".", ".."} for part in segments) or "//" in key or "\\" in key or "\x00" in key:
        raise invalid(field, "an object key without empty, '.' or '..' segments")
    if not key.startswith(tenant.prefixes(writing=writing)):
        raise forbidden(field, "not an object of this consumer" + (" that it may write" if writing else ""))
    return key


def check_prefix(tenant: Tenant, prefix: str) -> str:
    """A listing prefix inside the tenant's own (a whole input's or run's prefix, at least)."""
    check_key(tenant, prefix, "prefix")
    if prefix in tenant.prefixes():
        raise invalid("prefix", "one input's or run's prefix, not the consumer's whole")
    return prefix
