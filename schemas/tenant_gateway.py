"""What the tenant gateway and its clients agree on: the token and the names of the documents it answers.

The credential a per-consumer WorkflowApi holds for the tenant gateway is `gw1.<deployment id>.<mac>`.

The mac is HMAC-SHA256 over the deployment id under GXWF_GATEWAY_KEY, so the deployment handler mints the same
token for a redelivered deploy event and the gateway checks one without storing any. What the token may reach is
decided by the deployment document it names (its consumer, while it is live): revoking it is deleting that.
"""

from __future__ import annotations

import hashlib
import hmac

from schemas.documents import StatefulDocument
from schemas.inputs import InputDocument
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument, ResultDocument
from schemas.run import RunDocument

PREFIX = "gw1"

# The documents a WorkflowApi reads, by the name they have in the gateway's paths. Each names its consumer.
DOCUMENT_KINDS: dict[str, type[StatefulDocument]] = {
    "runs": RunDocument,
    "results": ResultDocument,
    "inputs": InputDocument,
    "provisions": ProvisionDocument,
    "deployments": DeploymentDocument,
    "grants": AccessGrantDocument,
}


def kind_name(kind: type[StatefulDocument]) -> str:
    for name, known in DOCUMENT_KINDS.items():
        if known is kind:
            return name
    raise ValueError(f"the tenant gateway answers no {kind.__name__}")


def mac_of(key: str, deployment_id: str) -> str:
    return hmac.new(key.encode(), f"{PREFIX}.{deployment_id}".encode(), hashlib.sha256).hexdigest()


def mint(key: str, deployment_id: str) -> str:
    return f"{PREFIX}.{deployment_id}.{mac_of(key, deployment_id)}"


def verified_deployment(key: str, token: str) -> str | None:
    """The deployment id the token was minted for, or None when it was not minted with this key."""
    prefix, _, rest = token.partition(".")
    deployment_id, _, mac = rest.rpartition(".")
    if prefix != PREFIX or not deployment_id or not mac:
        return None
    return deployment_id if hmac.compare_digest(mac_of(key, deployment_id), mac) else None
