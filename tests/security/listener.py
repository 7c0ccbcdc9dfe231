"""An "attacker" HTTP listener on 127.0.0.1 that keeps every request it receives, whole (head and body)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Listener:
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                data = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in data.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length:
                    data += await reader.readexactly(length)
        self.received.append(data)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()

    def everything(self) -> bytes:
        return b"\n".join(self.received)


@contextlib.asynccontextmanager
async def attacker() -> AsyncIterator[Listener]:
    listener = Listener()
    server = await asyncio.start_server(listener._handle, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        server.close()
        await server.wait_closed()
