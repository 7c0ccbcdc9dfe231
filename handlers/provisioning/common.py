"""What every provisioning step shares: the deployment's name and the connector's answer address."""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

from ports.edc import ProvisionTarget


def deployment_id_for(transfer_process_id: str) -> str:
    """Deterministic, so a re-sent request or a redelivered event names the same deployment."""
    return "dep-" + hashlib.sha256(transfer_process_id.encode()).hexdigest()[:16]


def target_to_store(target: ProvisionTarget) -> dict[str, Any]:
    return asdict(target)


def target_from_store(raw: dict[str, Any] | None) -> ProvisionTarget | None:
    return ProvisionTarget(**raw) if raw else None
