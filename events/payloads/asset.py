from __future__ import annotations

from events.payloads.common import Id, Payload, Reason


class AssetRegistered(Payload):
    transfer_process_id: Id
    consumer_id: Id
    deployment_id: Id
    asset_id: Id
    asset_version: int


class AssetRegistrationFailed(Payload):
    transfer_process_id: Id
    consumer_id: Id
    asset_id: Id
    reason: Reason
