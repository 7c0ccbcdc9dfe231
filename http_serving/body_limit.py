"""Request bodies bounded before anything parses or authenticates them.

FastAPI reads a JSON or form body whole before a route's dependencies (authentication among them) run, so without
a bound in front of it anybody could make a service hold and parse any number of bytes. `BodyLimit` is plain ASGI
and the outermost layer of every service: a body announced (Content-Length) or streamed (chunked) beyond its
route's limit is answered 413 problem+json before the app sees a byte of it.

Most routes take small JSON: their body is read here up to the limit (64 KiB unless a service says otherwise) and
handed on. A route that streams a big body itself (an upload) is named with its own limit; its bytes are counted as
the route reads them, and the first one over the limit fails the read with the same 413.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from http_serving.problems import ProblemDetails

JSON_BODY_LIMIT = 64 * 1024


class BodyTooLarge(ProblemDetails):
    """413: more body than the route accepts. The connection stays open (the server discards the rest of the body
    unread): a client that sends its whole body before reading the answer still gets it."""

    def __init__(self, limit: int, setting: str | None = None) -> None:
        named = f" ({setting})" if setting else ""
        super().__init__(
            413,
            "payload-too-large",
            None,
            f"body: larger than the {limit} bytes this route accepts{named}",
            errors=[{"field": "body", "message": f"over {limit} bytes"}],
        )


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """`limit` bytes for every route's body, read here before the app runs; `streamed` names the routes, by
    (method, path), that read their bodies as they arrive, each with its limit. `setting` names what configures
    the limit, for the 413's detail."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int = JSON_BODY_LIMIT,
        streamed: Mapping[tuple[str, str], int] | None = None,
        setting: str | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.streamed = dict(streamed or {})
        self.setting = setting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = self.streamed.get((scope["method"], scope["path"]))
        limit = self.limit if streamed is None else streamed
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        if streamed is not None:
            await self.app(scope, self._counting(receive, limit), send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, self._replaying(buffered, receive), send)

    def _counting(self, receive: Receive, limit: int) -> Receive:
        size = 0

        async def counted() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > limit:
                    raise BodyTooLarge(limit, self.setting)
            return message

        return counted

    @staticmethod
    def _replaying(buffered: list[Message], receive: Receive) -> Receive:
        pending = list(reversed(buffered))

        async def replayed() -> Message:
            return pending.pop() if pending else await receive()

        return replayed

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = BodyTooLarge(limit, self.setting).response(scope.get("path", "/"))
        await response(scope, receive, send)
