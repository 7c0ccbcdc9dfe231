"""The compare-and-set store against the real MongoDB-wire server: the shared contract, and its indexes."""

from __future__ import annotations

import pytest

from adapters.mongo_store import MongoStateStore
from tests.store_contract import *  # noqa: F403  (the contract's tests, collected here against MongoDB)


@pytest.fixture
def state_store(store: MongoStateStore) -> MongoStateStore:
    return store


async def test_indexes_exist_after_start(store: MongoStateStore) -> None:
    names = {index["name"] async for index in await store.db["runs"].list_indexes()}
    assert {"state_created", "history_event_id", "consumer_id_state"} <= names
