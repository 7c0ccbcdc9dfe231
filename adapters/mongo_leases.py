"""Leases in MongoDB: a document per lease whose holder may renew it until it expires.

The document keeps an epoch that grows every time the holder changes (one compare-and-set, so two replicas taking
an expired lease at once cannot both get the same epoch): what fenced writes are checked against
(adapters/mongo_fencing.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ports.leases import Lease
from schemas.documents import utcnow


class MongoLeases:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], collection: str = "leases") -> None:
        self.coll = db[collection]

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        asked_at = time.monotonic()
        now = utcnow()
        same = {"$eq": ["$holder", {"$literal": holder}]}
        try:
            doc = await self.coll.find_one_and_update(
                {"_id": name, "$or": [{"holder": holder}, {"expires_at": {"$lt": now}}]},
                [
                    {
                        "$set": {
                            "epoch": {"$cond": [same, "$epoch", {"$add": [{"$ifNull": ["$epoch", 0]}, 1]}]},
                            # When this epoch began: what a fenced write's time is compared with.
                            "taken_at": {"$cond": [same, "$taken_at", {"$literal": now}]},
                            # Where the takeover falls among the fenced writes (adapters/mongo_fencing.py).
                            "taken_seq": {"$cond": [same, "$taken_seq", {"$ifNull": ["$seq", 0]}]},
                            "holder": {"$literal": holder},
                            "expires_at": {"$literal": now + timedelta(seconds=ttl_seconds)},
                        }
                    }
                ],
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            # The document exists with another, unexpired holder: the upsert's insert lost the race.
            return None
        if doc is None or doc.get("holder") != holder:
            return None
        return Lease.taken(name, holder, int(doc.get("epoch") or 0), ttl_seconds, asked_at)

    async def held(self, name: str) -> bool:
        return await self.coll.count_documents({"_id": name, "expires_at": {"$gte": utcnow()}}, limit=1) > 0

    async def confirm(self, lease: Lease) -> bool:
        query = {"_id": lease.name, "holder": lease.holder, "epoch": lease.epoch}
        return await self.coll.count_documents(query, limit=1) > 0

    async def release(self, name: str, holder: str) -> None:
        # Expired rather than deleted: the epoch stays, so whoever takes it next gets a greater one.
        await self.coll.update_one({"_id": name, "holder": holder}, {"$set": {"expires_at": utcnow() - timedelta(1)}})
