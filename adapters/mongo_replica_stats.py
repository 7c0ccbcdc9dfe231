"""Each handler process's figures in the store's `replica_stats` collection: one document per process, so what a
replica did stays readable after it was killed (`gxwf chaos`, an operator comparing replicas)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "replica_stats"


class MongoReplicaStats:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], collection: str = COLLECTION) -> None:
        self.coll = db[collection]

    async def record(self, holder: str, figures: Mapping[str, Any]) -> None:
        """Replace the process's figures with these (absolute counts: a repeated write changes nothing)."""
        await self.coll.update_one({"_id": holder}, {"$set": dict(figures)}, upsert=True)

    async def all(self) -> list[dict[str, Any]]:
        return [doc async for doc in self.coll.find({})]
