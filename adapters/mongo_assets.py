"""The WorkflowAsset catalogue in MongoDB: one document per (asset, version), never changed once written
except for the deleted flag."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas.assets import StoredAsset, WorkflowAssetDefinition, next_version, serving_edc_asset

COLLECTION = "workflow_assets"


class MongoAssetCatalogue:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.coll = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.coll.create_index([("asset_id", ASCENDING), ("version", DESCENDING)], name="asset_version")
        await self.coll.create_index([("definition.edc_asset_ids", ASCENDING)], name="edc_asset_ids")

    async def apply(self, definition: WorkflowAssetDefinition) -> tuple[StoredAsset, bool]:
        # Two operators applying at once both compute version n+1; the loser's insert collides and re-reads.
        for _ in range(5):
            current = await self.latest(definition.id)
            stored = next_version(current, definition)
            if stored is None:
                assert current is not None
                return current, False
            try:
                await self.coll.insert_one({"_id": f"{stored.asset_id}@{stored.version}", **stored.model_dump()})
            except DuplicateKeyError:
                continue
            return stored, True
        raise RuntimeError(f"asset {definition.id}: concurrent applies kept colliding")

    async def latest(self, asset_id: str) -> StoredAsset | None:
        raw = await self.coll.find_one({"asset_id": asset_id}, sort=[("version", DESCENDING)])
        return _asset(raw)

    async def version(self, asset_id: str, version: int) -> StoredAsset | None:
        return _asset(await self.coll.find_one({"_id": f"{asset_id}@{version}"}))

    async def for_edc_asset(self, edc_asset_id: str) -> StoredAsset | None:
        query = {"$or": [{"asset_id": edc_asset_id}, {"definition.edc_asset_ids": edc_asset_id}]}
        ids = sorted({str(raw["asset_id"]) async for raw in self.coll.find(query, {"asset_id": 1})})
        return serving_edc_asset(edc_asset_id, [await self.latest(asset_id) for asset_id in ids])

    async def list_latest(self, *, include_deleted: bool = False) -> list[StoredAsset]:
        ids = sorted({str(raw["asset_id"]) async for raw in self.coll.find({}, {"asset_id": 1})})
        found = [await self.latest(asset_id) for asset_id in ids]
        return [a for a in found if a is not None and (include_deleted or not a.deleted)]

    async def delete(self, asset_id: str) -> bool:
        result = await self.coll.update_many({"asset_id": asset_id, "deleted": False}, {"$set": {"deleted": True}})
        return result.modified_count > 0


def _asset(raw: dict[str, Any] | None) -> StoredAsset | None:
    if raw is None:
        return None
    raw.pop("_id", None)
    return StoredAsset.model_validate(raw)
