"""The read models of the WorkflowApi and the dashboard (ports.queries), and the WorkflowApi's own records
(ports.records), on MongoDB."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from adapters.mongo_store import MongoStateStore
from ports.queries import OverviewRows, Page, PageKey, Row, RunFilter, TransferRecords
from schemas.dataflows import DataFlowDocument
from schemas.documents import StatefulDocument
from schemas.edc_calls import EdcCall
from schemas.inputs import InputDocument
from schemas.provisioning import AccessGrantDocument, DeploymentDocument, ProvisionDocument, ResultDocument
from schemas.run import RunDocument, RunRequestRecord

D = TypeVar("D", bound=StatefulDocument)
_NEWEST_FIRST = [("created_at", -1), ("_id", -1)]


async def _page(
    collection: AsyncCollection[dict[str, Any]], kind: type[D], query: dict[str, Any], after: PageKey | None, limit: int
) -> Page[D]:
    if after is not None:
        # Keyset pagination: stable while documents are added, and no skip over everything already shown.
        started = {
            "$or": [
                {"created_at": {"$lt": after.created_at}},
                {"created_at": after.created_at, "_id": {"$lt": after.id}},
            ]
        }
        query = {"$and": [query, started]}
    # One more than asked tells whether there is a next page without counting.
    found = [raw async for raw in collection.find(query).sort(_NEWEST_FIRST).limit(limit + 1)]
    items = [kind.from_store(raw) for raw in found[:limit]]
    last = items[-1] if len(found) > limit and items else None
    return Page(items, PageKey(last.created_at, last.id) if last is not None else None)


class MongoConsumerQueries:
    def __init__(self, store: MongoStateStore) -> None:
        self.db = store.db

    async def ensure_indexes(self) -> None:
        # Every request looks its token up by hash.
        await self.db[AccessGrantDocument.collection].create_index([("token_sha256", ASCENDING)], name="token_sha256")
        await self.db[RunRequestRecord.collection].create_index([("consumer_id", ASCENDING)], name="consumer_id")

    async def grant_by_token(self, token_sha256: str) -> AccessGrantDocument | None:
        raw = await self.db[AccessGrantDocument.collection].find_one({"token_sha256": token_sha256})
        return AccessGrantDocument.from_store(raw) if raw is not None else None

    async def runs(
        self, consumer_id: str, filters: RunFilter, *, after: PageKey | None, limit: int
    ) -> Page[RunDocument]:
        query: dict[str, Any] = {"consumer_id": consumer_id}
        if filters.state is not None:
            query["state"] = filters.state
        if filters.asset_id is not None:
            query["asset_id"] = filters.asset_id
        if filters.since is not None:
            query["created_at"] = {"$gte": filters.since}
        return await _page(self.db[RunDocument.collection], RunDocument, query, after, limit)

    async def inputs(self, consumer_id: str, *, after: PageKey | None, limit: int) -> Page[InputDocument]:
        return await _page(self.db[InputDocument.collection], InputDocument, {"consumer_id": consumer_id}, after, limit)


class MongoConsumerRecords:
    def __init__(self, store: MongoStateStore) -> None:
        self.db = store.db

    async def record_run_request(self, request: RunRequestRecord) -> RunRequestRecord:
        collection = self.db[RunRequestRecord.collection]
        try:
            await collection.insert_one(request.model_dump(by_alias=True, mode="python"))
        except DuplicateKeyError:
            existing = await collection.find_one({"_id": request.id})
            # Gone between the insert and the read (a clean-up): the caller sees its own start.
            return RunRequestRecord.model_validate(existing) if existing is not None else request
        return request

    async def run_request(self, run_id: str) -> RunRequestRecord | None:
        raw = await self.db[RunRequestRecord.collection].find_one({"_id": run_id})
        return RunRequestRecord.model_validate(raw) if raw is not None else None

    async def delete_input(self, input_id: str) -> None:
        await self.db[InputDocument.collection].delete_one({"_id": input_id})


class MongoOpsQueries:
    def __init__(self, store: MongoStateStore) -> None:
        self.store = store
        self.db = store.db
        self.database = store.db.name

    async def health(self) -> str:
        return await self.store.health()

    async def recent_transfers(self, limit: int) -> list[Row]:
        cursor = self.db[ProvisionDocument.collection].find({}, {"history": 0, "target": 0})
        return [doc async for doc in cursor.sort("created_at", -1).limit(limit)]

    async def transfer(self, transfer_id: str, *, max_runs: int, max_calls: int) -> TransferRecords | None:
        provision = await self.db[ProvisionDocument.collection].find_one({"_id": transfer_id})
        if provision is None:
            return None
        deployment = await self.db[DeploymentDocument.collection].find_one({"transfer_process_id": transfer_id})
        grant = await self.db[AccessGrantDocument.collection].find_one({"transfer_process_id": transfer_id})
        calls_cursor = self.db[EdcCall.collection].find({"transfer_process_id": transfer_id})
        calls = [c async for c in calls_cursor.sort("at", 1).limit(max_calls)]
        runs = await self._runs_of(provision, max_runs)
        results_cursor = self.db[ResultDocument.collection].find({"_id": {"$in": [run["_id"] for run in runs]}})
        results = {r["_id"]: r async for r in results_cursor.limit(max_runs)}
        dataflow = await self.db[DataFlowDocument.collection].find_one({"_id": transfer_id})
        return TransferRecords(provision, deployment, grant, calls, runs, results, dataflow)

    async def _runs_of(self, provision: Row, limit: int) -> list[Row]:
        runs = self.db[RunDocument.collection]
        named = [r async for r in runs.find({"transfer_process_id": provision["_id"]}).limit(limit)]
        if named or not provision.get("consumer_id"):
            return sorted(named, key=_created)
        # Runs of versions that did not record their transfer: the consumer's, while the transfer was provisioned.
        window: dict[str, Any] = {"$gte": provision.get("created_at")}
        ended = next((h.get("at") for h in provision.get("history") or [] if h.get("to") == "deprovisioned"), None)
        if ended is not None:
            window["$lte"] = ended
        query = {"consumer_id": provision["consumer_id"], "created_at": window}
        return sorted([r async for r in runs.find(query).limit(limit)], key=_created)

    async def overview_rows(self, limit: int) -> OverviewRows:
        return OverviewRows(
            await self._scan(ProvisionDocument.collection, {"consumer_id": 1, "state": 1}, limit),
            await self._scan(RunDocument.collection, {"consumer_id": 1, "state": 1, "site": 1}, limit),
        )

    async def _scan(self, collection: str, fields: dict[str, int], limit: int) -> list[Row]:
        cursor = self.db[collection].find({}, fields).sort("created_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def latest_in(self, kind: type[StatefulDocument], states: list[str], limit: int) -> list[Row]:
        cursor = self.db[kind.collection].find({"state": {"$in": states}}).sort("updated_at", -1).limit(limit)
        return [doc async for doc in cursor]

    async def result(self, run_id: str) -> Row | None:
        return await self.db[ResultDocument.collection].find_one({"_id": run_id}, {"history": 0})


def _created(row: Row) -> datetime:
    at = row.get("created_at")
    return at if isinstance(at, datetime) else datetime.max
