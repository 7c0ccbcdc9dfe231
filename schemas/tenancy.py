"""Whose data is whose: a tenant is one consumer as one connector names it.

Two connectors may both sell to a consumer they call `did:web:x`, or one may claim another's consumer id; runs,
inputs, results, namespaces, quotas and access grants are therefore keyed by the tenant id, which holds the
connector's name too, never by the EDC consumer id alone. Connector names hold no `/`, so the first `/` of a
tenant id ends the connector's name and two different pairs never give the same id.
"""

from __future__ import annotations

SEPARATOR = "/"
# Every id an event carries is at most 256 characters; the connector's name takes up to 64 and the separator one.
MAX_EDC_CONSUMER_ID = 256 - 64 - 1


def tenant_id(connector: str, edc_consumer_id: str) -> str:
    """ValueError for a connector name holding the separator or a consumer id too long to key anything."""
    if SEPARATOR in connector or not connector:
        raise ValueError(f"connector name {connector!r} cannot key a tenant")
    if not edc_consumer_id or len(edc_consumer_id) > MAX_EDC_CONSUMER_ID:
        raise ValueError(f"consumer id must be 1 to {MAX_EDC_CONSUMER_ID} characters")
    return f"{connector}{SEPARATOR}{edc_consumer_id}"


def edc_consumer_of(tenant: str) -> str:
    """The consumer id its connector uses, for display; a tenant id written before tenancy held none: as is."""
    return tenant.partition(SEPARATOR)[2] or tenant
