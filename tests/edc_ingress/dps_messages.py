"""Data Plane Signaling start messages as each generation writes them (see docs/edc.md)."""

from __future__ import annotations

from typing import Any

SIGNALING = "http://provider-cp.example:8181/api/signaling"


def start_018(tp: str, dataset: str = "shell-count", consumer: str = "did:web:consumer.example") -> dict[str, Any]:
    """EDC 0.18: `transferType` a string, callbackAddress set."""
    return {
        "messageId": f"m-{tp}",
        "participantId": "did:web:provider.example",
        "counterPartyId": consumer,
        "dataspaceContext": "dsp-2025-1",
        "processId": tp,
        "agreementId": f"agreement-{tp}",
        "datasetId": dataset,
        "transferType": "HttpData-PULL",
        "callbackAddress": SIGNALING,
        "labels": ["gxwf"],
        "metadata": {},
        "claims": {},
    }


def start_main(tp: str, dataset: str = "shell-count", consumer: str = "did:web:consumer.example") -> dict[str, Any]:
    """EDC main: `profile`, no callbackAddress."""
    body = start_018(tp, dataset, consumer)
    del body["transferType"]
    body["profile"] = "HttpData-PULL"
    body["callbackAddress"] = None
    return body


def start_spec(tp: str, dataset: str = "shell-count", consumer: str = "did:web:consumer.example") -> dict[str, Any]:
    """The spec's examples: `transferType` an object."""
    body = start_018(tp, dataset, consumer)
    body["transferType"] = {"destinationType": "HttpData", "flowtype": "PULL"}
    del body["callbackAddress"]
    return body


SHAPES = {"0.18": start_018, "main": start_main, "spec": start_spec}
