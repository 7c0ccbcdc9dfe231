"""The EDC call log in MongoDB: one document per attempt, in the `edc_calls` collection."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from schemas.edc_calls import EdcCall


class MongoEdcCallLog:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[EdcCall.collection]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("transfer_process_id", ASCENDING), ("at", ASCENDING)], name="transfer_at")

    async def record(self, call: EdcCall) -> None:
        await self.collection.insert_one(call.model_dump(by_alias=True))

    async def calls(self, **equals: Any) -> list[EdcCall]:
        cursor = self.collection.find(equals).sort([("at", ASCENDING), ("attempt", ASCENDING)])
        return [EdcCall.model_validate(raw) async for raw in cursor]
