"""Event streams end with a complete HTTP response when the server stops under them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sse_starlette import ServerSentEvent

from http_serving.server import Served
from http_serving.sse import EventStream


def endless_app() -> FastAPI:
    app = FastAPI()

    @app.get("/events")
    async def events() -> EventStream:
        async def forever() -> AsyncIterator[ServerSentEvent]:
            number = 0
            while True:
                number += 1
                yield ServerSentEvent(data=str(number), id=str(number))
                await asyncio.sleep(0.05)

        return EventStream(forever(), ping=15)

    return app


async def test_a_stream_open_at_shutdown_ends_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    served = Served("sse test", "127.0.0.1", 0)
    url = await served.start(endless_app())
    received: list[str] = []

    async def follow() -> None:
        async with httpx.AsyncClient(timeout=10) as client, client.stream("GET", url + "/events") as response:
            async for line in response.aiter_lines():
                if line.startswith("id: "):
                    received.append(line[4:])

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        follower = asyncio.create_task(follow())
        while len(received) < 3:
            await asyncio.sleep(0.05)
        await served.stop()
        # The client reads an ended body (no "incomplete chunked read"), so it can resume from its last id.
        await asyncio.wait_for(follower, 10)
    assert received[:3] == ["1", "2", "3"]
    assert not [r for r in caplog.records if "without completing response" in r.getMessage()]
