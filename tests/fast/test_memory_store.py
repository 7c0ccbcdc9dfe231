"""The in-memory store held to the same contract as the MongoDB store (tests/store_contract.py)."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory_store import MemoryStateStore
from tests.store_contract import *  # noqa: F403  (the contract's tests, collected here against the double)


@pytest.fixture
def state_store() -> MemoryStateStore:
    return MemoryStateStore()


class _MemoryRaw:
    def __init__(self, store: MemoryStateStore) -> None:
        self.store = store

    async def insert(self, collection: str, raw: dict[str, Any]) -> None:
        self.store.collections.setdefault(collection, {})[raw["_id"]] = dict(raw)

    async def find_one(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        return self.store.collections.get(collection, {}).get(doc_id)


@pytest.fixture
def raw_documents(state_store: MemoryStateStore) -> _MemoryRaw:
    return _MemoryRaw(state_store)


async def test_query_operators_are_refused_rather_than_misread() -> None:
    store = MemoryStateStore()
    with pytest.raises(NotImplementedError):
        await store.count(RunDocument, site={"$in": ["a"]})  # noqa: F405
