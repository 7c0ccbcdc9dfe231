"""Fenced writes on MongoDB: the lease check is part of the write.

Each write of a loop that holds a lease runs in a transaction that first updates the lease document on the
condition that it still names this holder with this epoch, then makes the write. The lease document counts the
epoch's writes (`writes.<epoch>`), the time of its last one (`last_write.<epoch>`), and numbers every fenced write
and takeover in the order the store applied them (`seq`; `last_seq.<epoch>`, `taken_seq` of the current holder):
an old epoch's `last_seq` below the current `taken_seq` is the proof that none of its writes came after the
takeover. Not matched: the transaction is aborted and the write refused (LeaseLost). Matched: the transaction
holds the lease document, so a takeover (which updates that document) waits until this write committed or was
aborted: no write of the old holder can land after its successor took the lease. A paused process holding such a
transaction open delays the takeover until the server aborts the transaction (its transaction lifetime limit);
the local deadline check before the transaction makes that a pause inside the few milliseconds of the write.

Leases stay in the `leases` collection of the same database (adapters/mongo_leases.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from adapters.fencing import LeaseGuard
from adapters.mongo_store import MongoStateStore
from ports.leases import LeaseLost
from ports.store import D, TransitionResult
from schemas.documents import StatefulDocument, utcnow

T = TypeVar("T")


class MongoFencedStore:
    def __init__(self, store: MongoStateStore, guard: LeaseGuard, leases_collection: str = "leases") -> None:
        self.store = store
        self.guard = guard
        self.leases = store.db[leases_collection]

    async def _fenced(self, write: Callable[[AsyncClientSession | None], Awaitable[T]]) -> T:
        self.guard.check_local()
        taken = list(self.guard.taken.values())
        if not taken:
            return await write(None)

        async def in_transaction(session: AsyncClientSession) -> T:
            for lease in taken:
                touched = await self.leases.find_one_and_update(
                    {"_id": lease.name, "holder": lease.holder, "epoch": lease.epoch},
                    {"$inc": {"seq": 1, f"writes.{lease.epoch}": 1}, "$max": {f"last_write.{lease.epoch}": utcnow()}},
                    projection={"seq": 1},
                    return_document=ReturnDocument.AFTER,
                    session=session,
                )
                if touched is None:
                    self.guard.refused += 1
                    raise LeaseLost(lease, "is another holder's now")
                # Its place in the order of every fenced write and takeover of this lease (taken_seq).
                await self.leases.update_one(
                    {"_id": lease.name}, {"$max": {f"last_seq.{lease.epoch}": touched["seq"]}}, session=session
                )
            return await write(session)

        async with self.store.client.start_session() as session:
            done = await session.with_transaction(in_transaction)
        self.guard.acted()
        return done

    async def create(self, doc: StatefulDocument, *, event_id: str) -> bool:
        return await self._fenced(lambda session: self.store.create(doc, event_id=event_id, session=session))

    async def get(self, kind: type[D], doc_id: str) -> D | None:
        return await self.store.get(kind, doc_id)

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        return await self._fenced(
            lambda session: self.store.transition(
                kind, doc_id, to, event_id=event_id, reason=reason, fields=fields, session=session
            )
        )

    async def set_fields(self, kind: type[StatefulDocument], doc_id: str, fields: Mapping[str, Any]) -> bool:
        return await self._fenced(lambda session: self.store.set_fields(kind, doc_id, fields, session=session))

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]:
        return await self.store.find(kind, states=states, limit=limit, oldest_first=oldest_first, **equals)

    async def count(self, kind: type[StatefulDocument], *, states: list[str] | None = None, **equals: Any) -> int:
        return await self.store.count(kind, states=states, **equals)
