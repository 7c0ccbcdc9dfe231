"""Server-Sent Events that end with a complete response when the server stops under an open stream."""

from __future__ import annotations

import contextlib

from sse_starlette import EventSourceResponse
from starlette.types import Message, Receive, Scope, Send


class EventStream(EventSourceResponse):
    """sse-starlette's response, finished properly on shutdown.

    When the server stops, sse-starlette cancels the stream and returns without the final empty body, so
    uvicorn logs "ASGI callable returned without completing response" and the client sees a truncated
    chunked body instead of an ended stream it can resume from its last event id. Here the body is ended.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = complete = False

        async def tracked(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        await super().__call__(scope, receive, tracked)
        if started and not complete:
            # A client that has gone already cannot be told; anything else would be a second error.
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
