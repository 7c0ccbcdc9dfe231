"""The compare-and-set store against the real MongoDB-wire server: the shared contract, and its indexes."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.mongo_store import MongoStateStore
from tests.store_contract import *  # noqa: F403  (the contract's tests, collected here against MongoDB)


@pytest.fixture
def state_store(store: MongoStateStore) -> MongoStateStore:
    return store


class _MongoRaw:
    def __init__(self, store: MongoStateStore) -> None:
        self.store = store

    async def insert(self, collection: str, raw: dict[str, Any]) -> None:
        await self.store.db[collection].insert_one(raw)

    async def find_one(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.store.db[collection].find_one({"_id": doc_id})
        return found


@pytest.fixture
def raw_documents(store: MongoStateStore) -> _MongoRaw:
    return _MongoRaw(store)


async def test_indexes_exist_after_start(store: MongoStateStore) -> None:
    names = {index["name"] async for index in await store.db["runs"].list_indexes()}
    assert {"state_created", "history_event_id", "consumer_id_state"} <= names
