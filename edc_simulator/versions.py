"""The EDC generations the simulator speaks, and what differs between them on the wire."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Provisioner = Literal["control-plane", "data-plane"]


@dataclass(frozen=True)
class EdcVersion:
    name: str
    # control-plane `provision-http` up to 0.15; data-plane `ProvisionHttp` from 0.14 to 0.18
    provisioner: Provisioner
    # `type: provision|deprovision` in control-plane requests appeared in 0.11
    typed_requests: bool
    management_path: str
    # early 0.x management answers were compacted with an `edc:` prefix instead of an @vocab
    prefixed_properties: bool
    context: object
    participant_context: bool
    agreement_id_field: bool


VERSIONS: dict[str, EdcVersion] = {
    v.name: v
    for v in (
        EdcVersion("0.5", "control-plane", False, "v2", True, {"edc": "https://w3id.org/edc/v0.0.1/ns/"}, False, False),
        EdcVersion(
            "0.10",
            "control-plane",
            False,
            "v3",
            False,
            {"@vocab": "https://w3id.org/edc/v0.0.1/ns/", "edc": "https://w3id.org/edc/v0.0.1/ns/"},
            False,
            False,
        ),
        EdcVersion(
            "0.15",
            "control-plane",
            True,
            "v3",
            False,
            {
                "@vocab": "https://w3id.org/edc/v0.0.1/ns/",
                "edc": "https://w3id.org/edc/v0.0.1/ns/",
                "odrl": "http://www.w3.org/ns/odrl/2/",
            },
            True,
            True,
        ),
        EdcVersion(
            "0.18", "data-plane", True, "v4", False, ["https://w3id.org/edc/connector/management/v2"], True, True
        ),
    )
}


# EDC's main line: no provisioners any more, only Data Plane Signaling; its management API as 0.18's.
MAIN = replace(VERSIONS["0.18"], name="main")
# The generations that drive a data plane through Data Plane Signaling (by default, in the simulator).
DPS_VERSIONS = ("0.18", "main")


def version(name: str) -> EdcVersion:
    if name == MAIN.name:
        return MAIN
    try:
        return VERSIONS[name]
    except KeyError:
        raise ValueError(f"unknown EDC version {name!r}: choose from {', '.join([*VERSIONS, MAIN.name])}") from None
