"""The log shipper's pacing: an attempt whose output cannot be read yet is asked again later and later."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from adapters.mongo_store import MongoStateStore
from handlers.context import HandlerContext
from handlers.jobs.logs import LogShipper
from schemas.run import RunDocument, RunState


class Waiting:
    """A backend whose pod is still pulling its image: no log to follow yet."""

    name = "fake"
    site = "fake-site"

    def __init__(self) -> None:
        self.asked = 0

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        self.asked += 1
        for chunk in ():
            yield chunk


class Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    async def append(self, run_id: str, attempt: int, offset: int, chunk: bytes) -> None:
        self.chunks.append(chunk)

    async def shipped(self, run_id: str, attempt: int) -> int | None:
        return sum(len(c) for c in self.chunks)


async def test_an_unreadable_log_is_asked_for_again_after_doubling_pauses(store: MongoStateStore) -> None:
    run = RunDocument(id="wait-1", state=RunState.QUEUED, consumer_id="c", asset_id="a", site="fake-site")
    await store.create(run, event_id="e-1")
    for state in (RunState.PENDING, RunState.RUNNING):
        assert (await store.transition(RunDocument, "wait-1", state, event_id=f"e-{state}")).changed
    backend = Waiting()
    shipper = LogShipper(HandlerContext(store=store, events=None, compute=backend), Sink())  # type: ignore[arg-type]
    try:
        for _ in range(40):  # 4 s of passes every 0.1 s
            await shipper.pass_once()
            await asyncio.sleep(0.1)
    finally:
        await shipper.close()
    # Without pacing that would be ~40 reads; with pauses of 0.5, 1 and 2 s it is a handful.
    assert 3 <= backend.asked <= 6, backend.asked
