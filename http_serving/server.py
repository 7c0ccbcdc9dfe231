"""An ASGI app served by uvicorn on a socket bound here, started and stopped from a running event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn


class ListenError(Exception):
    """The server cannot listen or start as configured; the message names the address."""


def listen(host: str, port: int) -> socket.socket:
    """Bound here rather than by uvicorn, so a taken port is an error we can word (and port 0 works)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto given explicitly: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and without
    # it every response waits ~40 ms for a delayed ACK.
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def port_free(host: str, port: int) -> bool:
    """Whether this address can be bound now (a default port another process has taken cannot)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the system has free now, for a server started elsewhere (another process) to take."""
    with socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    ) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def url_of(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class Served:
    """One app on one address: `start` returns its URL once it accepts connections; `stop` lets it finish."""

    def __init__(self, name: str, host: str, port: int, **config: Any) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.config = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "server_header": False,
            **config,
        }
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.url: str | None = None

    def bind(self) -> socket.socket:
        try:
            return listen(self.host, self.port)
        except OSError as error:
            raise ListenError(f"cannot listen on {self.host}:{self.port}: {error.strerror}") from None

    async def start(self, app: Any, listener: socket.socket | None = None) -> str:
        sock = listener or self.bind()
        server = uvicorn.Server(uvicorn.Config(app, **self.config))
        task = asyncio.create_task(server.serve(sockets=[sock]), name=self.name)
        while not server.started:
            if task.done():
                task.result()
                raise ListenError(f"the {self.name} on {self.host}:{self.port} stopped while starting")
            await asyncio.sleep(0.01)
        self._server, self._task = server, task
        self.url = url_of(self.host, sock.getsockname()[1])
        return self.url

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await self._task
        self._server = self._task = None
