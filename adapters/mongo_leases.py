"""Leases in MongoDB: a document per lease whose holder may renew it until it expires."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from schemas.documents import utcnow


class MongoLeases:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], collection: str = "leases") -> None:
        self.coll = db[collection]

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> bool:
        now = utcnow()
        try:
            result = await self.coll.update_one(
                {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
                {"$set": {"holder": holder, "expires_at": now + timedelta(seconds=ttl_seconds)}},
                upsert=True,
            )
        except DuplicateKeyError:
            # The document exists with another, unexpired holder: the upsert's insert lost the race.
            return False
        return result.matched_count == 1 or result.upserted_id is not None

    async def held(self, name: str) -> bool:
        return await self.coll.count_documents({"_id": name, "expires_at": {"$gte": utcnow()}}, limit=1) > 0
