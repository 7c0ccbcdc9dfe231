from __future__ import annotations

from typing import ClassVar

from events.payloads.common import Id, Payload, Reason


class AssetRegistered(Payload):
    subject: ClassVar[str] = "wf.asset.registered"

    transfer_process_id: Id
    consumer_id: Id
    deployment_id: Id
    asset_id: Id
    asset_version: int


class AssetRegistrationFailed(Payload):
    subject: ClassVar[str] = "wf.asset.registration_failed"

    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    reason: Reason
