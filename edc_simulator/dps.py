"""The simulated connector as a Data Plane Signaling (DPS) v1 control plane: the messages EDC 0.18 and EDC main
send a registered data plane, and what the data plane's callbacks left in the ledger.

EDC 0.18 names the transfer type `transferType` ("HttpData-PULL") and sends its signaling callback base as
`callbackAddress`; main names it `profile` and sends `callbackAddress: null` (the data plane knows the control
plane from its registration).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from edc_simulator.ledger import PROVIDER_ID, Transfer

Generation = Literal["0.18", "main"]
GENERATIONS: tuple[Generation, ...] = ("0.18", "main")
SIGNALING = "/api/signaling"
HTTP_PULL = "HttpData-PULL"
PULL_PROFILE = "https://w3id.org/dspace-sig/profile/http-pull"
CALLBACK_KINDS = ("prepared", "started", "completed", "errored")
DATASPACE_CONTEXT = "dspace-2025-1"
# The id the data plane registers under; with OAuth2 also its client id at the issuer, so the `sub` of its tokens.
DATAPLANE_ID = "gxwf-dataplane"
# The `aud` of the tokens the simulated issuer hands out for Data Plane Signaling.
SIGNALING_AUDIENCE = "dataplane-signaling"


@dataclass
class DataPlane:
    """A data plane as `PUT /v4/dataplanes` registered it."""

    dataplane_id: str
    endpoint: str
    transfer_types: list[str]
    labels: list[str]
    authorization: Any = None
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class SignalingCallback:
    """A data plane's call to `{signaling}/transfers/{id}/dataflow/{kind}`, and what this control plane answered."""

    transfer_id: str
    kind: str
    body: Any
    status: int
    authorization: str | None
    at: float = field(default_factory=time.time)
    # Why its token was refused (answered 401), when the data plane registered an OAuth2 profile.
    refused: str | None = None


def registration(body: Any) -> DataPlane | str:
    """The stored data plane, or what is wrong with the body (EDC refuses a registration without these)."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    dataplane_id, endpoint = body.get("dataplaneId") or body.get("@id"), body.get("endpoint") or body.get("url")
    types = body.get("transferTypes", body.get("allowedTransferTypes", []))
    if not isinstance(dataplane_id, str) or not dataplane_id:
        return "dataplaneId is required"
    if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
        return "endpoint must be an http(s) URL"
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        return "transferTypes must be a list of strings"
    labels = body.get("labels") or []
    return DataPlane(
        dataplane_id,
        endpoint.rstrip("/"),
        list(types),
        [str(label) for label in labels] if isinstance(labels, list) else [],
        body.get("authorization"),
        body,
    )


def start_message(generation: Generation, transfer: Transfer, callback_base: str) -> dict[str, Any]:
    """What the control plane POSTs to `{endpoint}/start` for a provider-side pull transfer."""
    body: dict[str, Any] = {
        "messageId": str(uuid.uuid4()),
        "participantId": PROVIDER_ID,
        "counterPartyId": transfer.agreement.consumer_id,
        "dataspaceContext": DATASPACE_CONTEXT,
        "processId": transfer.id,
        "agreementId": transfer.agreement.id,
        "datasetId": transfer.asset_id,
        "labels": [],
        "metadata": {},
        "claims": {},
    }
    if generation == "0.18":
        body["transferType"] = HTTP_PULL
        body["callbackAddress"] = callback_base
    else:
        body["profile"] = HTTP_PULL
        body["callbackAddress"] = None
    return body


def suspend_message(reason: str | None = None) -> dict[str, Any]:
    """Suspend and terminate carry only an optional reason: the process is the path's."""
    return {"reason": reason}


def resume_message(generation: Generation, transfer: Transfer, callback_base: str) -> dict[str, Any]:
    """Resuming restarts the same process: the start message's fields, sent to `/{id}/resume`."""
    return start_message(generation, transfer, callback_base)


def terminate_message(reason: str | None = None) -> dict[str, Any]:
    return {"reason": reason}


def completed_message() -> dict[str, Any]:
    return {}


def access_of(address: Any) -> tuple[str, str] | None:
    """(endpoint, token) of a DataAddress in any of the shapes in use: endpointProperties, or flattened."""
    if not isinstance(address, dict):
        return None
    endpoint = address.get("endpoint")
    token = address.get("authorization")
    properties = address.get("endpointProperties")
    if isinstance(properties, list):
        for item in properties:
            if isinstance(item, dict) and item.get("name") == "authorization":
                token = item.get("value")
    if isinstance(endpoint, str) and endpoint and isinstance(token, str) and token:
        return endpoint, token.removeprefix("Bearer ")
    return None
