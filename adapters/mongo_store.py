"""The state store on MongoDB (any MongoDB-wire server) through PyMongo's native async client."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

import structlog
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ports.store import Outcome, TransitionResult
from schemas.documents import HistoryEntry, StatefulDocument, utcnow
from schemas.registry import DOCUMENT_KINDS

D = TypeVar("D", bound=StatefulDocument)
log = structlog.get_logger("gxwf.store")


class MongoStateStore:
    def __init__(self, client: AsyncMongoClient[dict[str, Any]], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[dict[str, Any]] = client[database]

    @classmethod
    def connect(cls, url: str, database: str) -> MongoStateStore:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=10_000, appname="gxwf"
        )
        return cls(client, database)

    async def close(self) -> None:
        await self.client.close()

    async def ping(self) -> None:
        await self.db.command("ping")

    async def health(self, timeout: float = 2.0) -> str:
        """The string "ok", or what went wrong, for readiness endpoints (never raises)."""
        if not self.client.topology_description.has_writable_server():
            # The driver has lost its server (or not met it yet): a ping would wait for it until the timeout and
            # answer "ok" if it came back meanwhile, hiding a short outage. A server that is there answers at once.
            timeout = min(timeout, 0.25)
        try:
            async with asyncio.timeout(timeout):
                await self.ping()
        except Exception as error:
            return f"error: {type(error).__name__}"
        return "ok"

    async def ensure_indexes(self) -> None:
        for kind in DOCUMENT_KINDS:
            coll = self.db[kind.collection]
            await coll.create_index([("state", ASCENDING), ("created_at", ASCENDING)], name="state_created")
            await coll.create_index([("history.event_id", ASCENDING)], name="history_event_id")
            for key in ("consumer_id", "transfer_process_id"):
                if key in kind.model_fields:
                    await coll.create_index([(key, ASCENDING), ("state", ASCENDING)], name=f"{key}_state")

    # `session`: the writes also take part in a transaction (a fenced write, adapters/mongo_fencing.py).
    async def create(self, doc: StatefulDocument, *, event_id: str, session: AsyncClientSession | None = None) -> bool:
        type(doc).machine.check(None, doc.state)
        now = utcnow()
        entry = HistoryEntry(from_=None, to=doc.state, at=now, event_id=event_id)
        stored = doc.model_copy(update={"history": [entry], "created_at": now, "updated_at": now})
        try:
            await self.db[doc.collection].insert_one(stored.to_store(), session=session)
        except DuplicateKeyError:
            return False
        return True

    async def get(self, kind: type[D], doc_id: str) -> D | None:
        raw = await self.db[kind.collection].find_one({"_id": doc_id})
        return kind.from_store(raw) if raw is not None else None

    async def set_fields(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        fields: Mapping[str, Any],
        *,
        session: AsyncClientSession | None = None,
    ) -> bool:
        if "state" in fields or "history" in fields:
            raise ValueError("state and history change only through transition()")
        kind.check_fields(fields)
        result = await self.db[kind.collection].update_one(
            {"_id": doc_id}, {"$set": {**fields, "updated_at": utcnow()}}, session=session
        )
        return result.matched_count == 1

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]:
        cursor = self.db[kind.collection].find(_query(states, equals)).limit(limit)
        if oldest_first:
            cursor = cursor.sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [kind.from_store(raw) async for raw in cursor]

    async def count(self, kind: type[StatefulDocument], *, states: list[str] | None = None, **equals: Any) -> int:
        return int(await self.db[kind.collection].count_documents(_query(states, equals)))

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
        session: AsyncClientSession | None = None,
    ) -> TransitionResult:
        kind.check_fields(fields or {})
        coll = self.db[kind.collection]
        sources = sorted(kind.machine.sources(to))
        now = utcnow()
        entry = {"to": to, "at": now, "event_id": event_id, "reason": reason}
        # One round trip: the filter is the compare (an allowed source state, this event not yet applied)
        # and the pipeline update records the state it replaced. $literal keeps values such as "$x" from
        # being read as field paths.
        result = await coll.update_one(
            # Once per (event, target): one event may legitimately cause several transitions of a document.
            {
                "_id": doc_id,
                "state": {"$in": sources},
                "history": {"$not": {"$elemMatch": {"event_id": event_id, "to": to}}},
            },
            [
                {
                    "$set": {
                        **{key: {"$literal": value} for key, value in (fields or {}).items()},
                        "history": {
                            "$concatArrays": [
                                "$history",
                                [{"from": "$state", **{k: {"$literal": v} for k, v in entry.items()}}],
                            ]
                        },
                        "state": {"$literal": to},
                        "updated_at": {"$literal": now},
                    }
                }
            ],
            session=session,
        )
        if result.modified_count == 1:
            return TransitionResult(Outcome.APPLIED, to)
        current = await coll.find_one(
            {"_id": doc_id}, {"state": 1, "history.event_id": 1, "history.to": 1}, session=session
        )
        if current is None:
            return TransitionResult(Outcome.MISSING, None)
        state = str(current["state"])
        if any(h.get("event_id") == event_id and h.get("to") == to for h in current.get("history", ())):
            return TransitionResult(Outcome.ALREADY_APPLIED, state)
        log.warning("transition rejected", kind=kind.collection, id=doc_id, state=state, to=to, event_id=event_id)
        return TransitionResult(Outcome.REJECTED, state)


def _query(states: list[str] | None, equals: Mapping[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = dict(equals)
    if states is not None:
        query["state"] = {"$in": states}
    return query
