"""`FakeKubeServer`: the fake API on a loopback port, a kubeconfig for it, and what tests assert with."""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import kmock
from aiohttp import test_utils

from fakekube.api import KubeApi
from fakekube.calls import ApiCall, count
from fakekube.controller import ControllerConfig, FakeController
from fakekube.store import ObjKey, meta

if TYPE_CHECKING:
    from kubernetes_asyncio.client import ApiClient


def _tcp_socket(host: str, port: int, family: socket.AddressFamily) -> socket.socket:
    # IPPROTO_TCP given explicitly: asyncio sets TCP_NODELAY only on such sockets, and without it each
    # answer waits ~40 ms for a delayed ACK (aiohttp's test server opens its socket with proto 0).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _Listener(test_utils.RawTestServer):
    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, socket_factory=_tcp_socket, **kwargs)


class FakeKubeServer:
    """A fake kube-apiserver over HTTP on 127.0.0.1, with a fake controller-manager, scheduler and kubelet.

    Usage::

        async with FakeKubeServer() as kube:
            async with kube.api_client() as api:
                await CoreV1Api(api).create_namespace({"metadata": {"name": "n"}})
            assert kube.calls["create", "namespaces"] == 1

    `controller=False` gives an API server alone: no pods for Jobs or Deployments, no scheduling.
    `validate="1.30.0"` checks every object written (not status updates) with kubernetes-validate --strict.
    """

    def __init__(
        self,
        *,
        controller: bool | ControllerConfig = True,
        validate: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        gc_delay: float = 0.0,
        change_limit: int = 200_000,
    ) -> None:
        self.api = KubeApi(validate_version=validate, gc_delay=gc_delay, change_limit=change_limit)
        self._server = kmock.Server(self.api, host=host, port=port, server_cls=_Listener)
        self._controller_config: ControllerConfig | None = (
            None if controller is False else ControllerConfig() if controller is True else controller
        )
        self.controller: FakeController | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.kubeconfig_path = Path()

    async def __aenter__(self) -> FakeKubeServer:
        await self.api.__aenter__()
        await self._server.__aenter__()
        self._tmp = tempfile.TemporaryDirectory(prefix="fakekube-")
        self.kubeconfig_path = Path(self._tmp.name) / "kubeconfig"
        self.kubeconfig_path.write_text(json.dumps(self.kubeconfig()))
        if self._controller_config is not None:
            self.controller = FakeController(self.url, self._controller_config)
            await self.controller.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.controller is not None:
            await self.controller.stop()
        self.api.store.close()  # ends every watch and log follow, so the server can shut down
        await self._server.__aexit__(exc_type, exc, tb)
        await self.api.__aexit__(exc_type, exc, tb)
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def url(self) -> str:
        return str(self._server.url).rstrip("/")

    def kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fakekube", "cluster": {"server": self.url}}],
            "users": [{"name": "fakekube", "user": {"token": "fakekube"}}],
            "contexts": [
                {"name": "fakekube", "context": {"cluster": "fakekube", "user": "fakekube", "namespace": namespace}}
            ],
            "current-context": "fakekube",
        }

    def api_client(self) -> ApiClient:
        """A kubernetes-asyncio ApiClient for this server; use it as `async with kube.api_client() as api`."""
        from kubernetes_asyncio.client import ApiClient, Configuration

        configuration = Configuration(host=self.url)
        configuration.api_key = {"authorization": "fakekube"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return ApiClient(configuration)

    # --- what tests assert with

    @property
    def call_log(self) -> list[ApiCall]:
        return self.api.call_log

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        """(verb, resource) -> calls by the code under test, e.g. `kube.calls["create", "deployments.apps"]`."""
        return count(self.api.call_log)

    @property
    def controller_calls(self) -> Counter[tuple[str, str]]:
        return count(self.api.call_log, controller=True)

    def calls_in(self, namespace: str) -> Counter[tuple[str, str]]:
        """(verb, resource) -> calls by the code under test in one namespace, e.g. one consumer's."""
        return count(c for c in self.api.call_log if c.namespace == namespace)

    def reset_calls(self) -> None:
        self.api.call_log.clear()

    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Live objects of a kind ("Pod", "pods", "deployments.apps"), oldest first."""
        rtype = self.api.catalog.lookup(kind)
        items = self.api.store.items(rtype.group, rtype.plural, namespace if rtype.namespaced else None)
        return sorted(items, key=lambda o: int(meta(o)["resourceVersion"]))

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        rtype = self.api.catalog.lookup(kind)
        return self.api.store.get(ObjKey(rtype.group, rtype.plural, namespace if rtype.namespaced else None, name))

    def namespaced_objects(self, namespace: str) -> list[dict[str, Any]]:
        """Everything in a namespace, of every kind."""
        return [obj for _key, obj in self.api.store.in_namespace(namespace)]

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `condition()` returns something truthy, re-checking after every change; returns it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter = self.api.store.waiter()
            result = condition()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {timeout} s")
            await self.api.store.wait(waiter, min(remaining, 0.5))

    async def settled(self) -> None:
        """Wait until garbage collection and namespace cleanup have caught up with every change so far."""
        await self.api.collector.idle()

    def compact(self) -> None:
        """Forget the change log: watches resuming from an older resourceVersion get 410 Gone."""
        self.api.store.compact()
