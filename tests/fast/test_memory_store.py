"""The in-memory store held to the same contract as the MongoDB store (tests/store_contract.py)."""

from __future__ import annotations

import pytest

from adapters.memory_store import MemoryStateStore
from tests.store_contract import *  # noqa: F403  (the contract's tests, collected here against the double)


@pytest.fixture
def state_store() -> MemoryStateStore:
    return MemoryStateStore()


async def test_query_operators_are_refused_rather_than_misread() -> None:
    store = MemoryStateStore()
    with pytest.raises(NotImplementedError):
        await store.count(RunDocument, site={"$in": ["a"]})  # noqa: F405
