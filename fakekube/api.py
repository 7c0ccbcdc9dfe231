"""The HTTP face: a kmock KubernetesEmulator whose write path and object handlers are replaced.

kmock keeps what it does well: the aiohttp plumbing, the request log, discovery documents and its reaction
DSL, so a test can still inject faults (`kube.api["post", "/api/v1/namespaces/ns/pods"][:2] << 500`):
reactions a test adds outrank the handlers here. The emulator's own interceptor (merge-only writes, no
resourceVersion, no selectors, no cascades) is bypassed: every /api and /apis request for a resource is
routed by `paths` and served by the registry, the store and the watch streams.

The lowest reaction only claims a request (it raises `_Claimed`) and the answer is written here with aiohttp
directly: a kmock reaction that returns a `Response` copies its status and headers into the shared reaction
object, so they would leak into the next answer.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import secrets
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import attrs
import kmock
import yaml
from aiohttp import web
from kmock._internal import parsing as kmock_parsing

from fakekube import logs, paths, watching
from fakekube.calls import CONTROLLER_AGENT, ApiCall
from fakekube.catalog import Catalog, ResourceType
from fakekube.collector import Collector
from fakekube.errors import ApiError, bad_request, invalid
from fakekube.patching import APPLY_PATCH
from fakekube.registry import Registry, Validator
from fakekube.selectors import field_matcher, label_matcher
from fakekube.store import ObjKey, Store, meta, now

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
KUBELET_PREFIX = "/fakekube/v1/"
_ACTIONS = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}
_JSON = "application/json"
_PLAIN = "text/plain"


class _Claimed(Exception):
    """Raised by the fallback reaction: no reaction of a test took the request, fakekube answers it."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON, or bytes sent as they are
    content_type: str = _JSON


@dataclass(frozen=True)
class Stream:
    """A streamed answer: JSON lines of a watch, or the text of a followed log."""

    content_type: str
    chunks: AsyncIterator[bytes]


def _parse_path(path: str) -> kmock_parsing.ParsedPath:
    """kmock 0.8 raises on /api/v1/namespaces (a 500 before any handler runs) and reads /api/v1/namespaces/x
    as "namespace x of no resource". kmock parses every request with this function before routing it."""
    found = paths.route(path, "GET", {})
    if found is None:
        return kmock_parsing.ParsedPath()
    return kmock_parsing.ParsedPath(
        group=found.group,
        version=found.version or None,
        plural=found.plural,
        namespace=found.namespace,
        name=found.name,
        subresource=found.subresource,
    )


kmock_parsing.parse_path = _parse_path


@functools.cache
def _bundled_resources() -> dict[kmock.resource, kmock.ResourceInfo]:
    """kmock's discovery data of a K3s cluster, read once per process (it is a gzipped JSON)."""
    resources = kmock.ResourcesArray()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # kmock 0.8 reads it with importlib's read_binary
        resources.load_bundled()
    return {ref: resources[ref] for ref in resources}


def _status_ok(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    return body


def _kubernetes_validator(version: str) -> Validator:
    import kubernetes_validate  # type: ignore[import-untyped]  # slow to import: only when asked for

    def check(obj: dict[str, Any]) -> None:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path) or "<root>"
            name = meta(obj).get("name", "")
            raise invalid(str(obj.get("kind")), "", "", name, [(path, exc.message)]) from exc
        except (kubernetes_validate.InvalidSchemaError, kubernetes_validate.SchemaNotFoundError):
            pass  # kinds without a bundled schema (custom resources) pass, as with no webhook

    return check


@attrs.define(kw_only=True)
class KubeApi(kmock.KubernetesEmulator):
    validate_version: str | None = None
    gc_delay: float = 0.0
    change_limit: int = 200_000

    catalog: Catalog = attrs.field(init=False)
    store: Store = attrs.field(init=False)
    registry: Registry = attrs.field(init=False)
    collector: Collector = attrs.field(init=False)
    pod_logs: logs.PodLogs = attrs.field(init=False, factory=logs.PodLogs)
    call_log: list[ApiCall] = attrs.field(init=False, factory=list)
    _builtin: frozenset[int] = attrs.field(init=False, factory=frozenset)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for ref, info in _bundled_resources().items():
            self.resources[ref] = attrs.evolve(info)  # a copy per server: tests may change theirs
        self.catalog = Catalog(self.resources)
        self.store = Store(self.objects, change_limit=self.change_limit)
        self.registry = Registry(self.store, self.catalog)
        self.collector = Collector(self.registry, self.gc_delay)
        # One notch above kmock's own fallbacks, below any reaction a test adds.
        (self.fallback**1)[self._is_ours] << self._claim
        self._builtin = frozenset(id(payload) for payload in self._payloads)
        ns_type = self.catalog.lookup("namespaces")
        for name in SYSTEM_NAMESPACES:
            self.registry.create(ns_type, None, {"metadata": {"name": name}})
        if self.validate_version:
            self.registry.validator = _kubernetes_validator(self.validate_version)

    async def __aenter__(self) -> KubeApi:
        await super().__aenter__()
        self.collector.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.store.close()
        await self.collector.stop()
        await super().__aexit__(*exc)

    async def _serve_version(self, request: kmock.Request) -> Any:
        """kmock lists each subresource with its parent's short names and verbs, and kubectl then finds
        `ns` ambiguous; subresources have neither short names nor categories, and their own verbs."""
        document = await super()._serve_version(request)
        for entry in document.get("resources", []) if isinstance(document, dict) else []:
            if "/" in entry["name"]:
                entry.update(shortNames=[], categories=[], verbs=["get", "patch", "update"])
        return document

    # --- routing

    def _is_ours(self, request: kmock.Request) -> bool:
        path = request.url.path
        if path.startswith(KUBELET_PREFIX):
            return True
        found = paths.route(path, request.method.value, request.params)
        return found is not None and found.plural is not None

    async def _handle(self, request: kmock.Request) -> Any:
        found = paths.route(request.url.path, request.method.value, request.params)
        if found is not None:
            resource = kmock.resource(group=found.group, version=found.version or None, plural=found.plural)
            fixed = attrs.evolve(
                request,
                url=request.url.with_path(request.url.path.rstrip("/") or "/"),
                resource=resource,
                namespace=found.namespace,
                name=found.name,
                subresource=found.subresource,
                action=_ACTIONS.get(found.verb) if found.plural else None,
            )
            if request.id < len(self._requests) and self._requests[request.id] is request:
                self._requests[request.id] = fixed
            request = fixed
        if found is not None and found.plural is not None and not self._test_reactions():
            # kmock matches each reaction by re-filtering every request seen so far (quadratic in the
            # requests served); with no reaction of a test to honour, answer at once.
            response = await self._respond(request)
        else:
            try:
                # Skip the emulator's write interceptor: the registry does all writing.
                response = await super(kmock.KubernetesEmulator, self)._handle(request)
            except _Claimed:
                response = await self._respond(request)
        if found is not None and found.plural is not None:
            agent = request.headers.get("User-Agent", "")
            self.call_log.append(
                ApiCall(
                    verb=found.verb,
                    resource=found.resource,
                    namespace=found.namespace,
                    name=found.name,
                    status=response.status,
                    controller=agent.startswith(CONTROLLER_AGENT),
                )
            )
        return response

    def _test_reactions(self) -> bool:
        return any(id(payload) not in self._builtin for payload in self._payloads)

    def _claim(self, request: kmock.Request) -> None:
        raise _Claimed

    async def _respond(self, request: kmock.Request) -> web.StreamResponse:
        try:
            if request.url.path.startswith(KUBELET_PREFIX):
                result: Reply | Stream = self._kubelet_write(request)
            else:
                found = paths.route(request.url.path, request.method.value, request.params)
                assert found is not None and found.plural is not None
                rtype = self.catalog.get(found.group, found.plural)
                if rtype is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                result = await self._dispatch(request, found, rtype)
        except ApiError as exc:
            result = Reply(exc.code, exc.status())
        if isinstance(result, Reply):
            body = result.body if isinstance(result.body, bytes) else dump(result.body).encode()
            return web.Response(status=result.status, body=body, headers={"Content-Type": result.content_type})
        raw = request._raw_request
        assert raw is not None
        response = web.StreamResponse(status=200, headers={"Content-Type": result.content_type})
        await response.prepare(raw)
        with contextlib.suppress(ConnectionError):
            async for chunk in result.chunks:
                if chunk:
                    await response.write(chunk)
            await response.write_eof()
        return response

    async def _dispatch(self, request: kmock.Request, route: paths.Route, rtype: ResourceType) -> Reply | Stream:
        query = request.params
        dry_run = query.get("dryRun") == "All"
        ns, name, sub = route.namespace, route.name, route.subresource
        if rtype.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and sub not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        verb = route.verb
        if verb == "watch":
            label_matcher(query.get("labelSelector"))  # a bad selector is a 400, not a broken stream
            field_matcher(query.get("fieldSelector"))
            namespace = route.namespace if rtype.namespaced else None
            return Stream(_JSON, json_lines(watching.events(self.store, rtype, namespace, route.name, query)))
        if verb == "list":
            return Reply(200, self._list(rtype, ns, query))
        if verb == "get":
            assert name is not None
            obj = self.registry.get(rtype, ns, name)
            if sub == "log":
                return self._log(obj, query)
            return Reply(200, obj)
        if verb == "create":
            body = _body(request)
            if name is not None:
                return self._create_subresource(rtype, ns, name, sub, body)
            return Reply(201, self.registry.create(rtype, ns, body, dry_run=dry_run))
        if verb == "update":
            assert name is not None
            return Reply(200, self.registry.replace(rtype, ns, name, _body(request), subresource=sub, dry_run=dry_run))
        if verb == "patch":
            assert name is not None
            content_type = request.headers.get("Content-Type", "application/merge-patch+json")
            if content_type.startswith(APPLY_PATCH) and not query.get("fieldManager"):
                raise bad_request(
                    'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
                )
            obj, created = self.registry.patch(
                rtype,
                ns,
                name,
                _body(request),
                content_type,
                subresource=sub,
                field_manager=query.get("fieldManager"),
                dry_run=dry_run,
            )
            return Reply(201 if created else 200, obj)
        if verb == "delete":
            assert name is not None
            obj, removed = self.registry.delete(rtype, ns, name, _delete_options(request), dry_run=dry_run)
            return Reply(200 if removed else 202, obj)
        if verb == "deletecollection":
            items = self._select(rtype, ns, query)
            self.registry.delete_collection(rtype, ns, items, _delete_options(request))
            return Reply(200, _status_ok())
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # --- reading

    def _select(self, rtype: ResourceType, namespace: str | None, query: Any) -> list[dict[str, Any]]:
        by_label = label_matcher(query.get("labelSelector"))
        by_field = field_matcher(query.get("fieldSelector"))
        items = self.store.items(rtype.group, rtype.plural, namespace if rtype.namespaced else None)
        return [obj for obj in items if by_label(obj) and by_field(obj)]

    def _list(self, rtype: ResourceType, namespace: str | None, query: Any) -> dict[str, Any]:
        items = sorted(
            self._select(rtype, namespace, query), key=lambda o: (meta(o).get("namespace") or "", meta(o)["name"])
        )
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        limit = int(query.get("limit") or 0)
        start = int(query.get("continue") or 0)
        if limit:
            if start + limit < len(items):
                metadata["continue"] = str(start + limit)
                metadata["remainingItemCount"] = len(items) - start - limit
            items = items[start : start + limit]
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": metadata, "items": items}

    def _log(self, pod: dict[str, Any], query: Any) -> Reply | Stream:
        container = logs.container_of(pod, query.get("container"))
        logs.check_readable(pod, container)
        uid = meta(pod)["uid"]
        timestamps = paths.is_true(query.get("timestamps"))
        lines = self.pod_logs.lines(uid, container)
        tail = query.get("tailLines")
        start = max(len(lines) - int(tail), 0) if tail is not None else 0
        if not paths.is_true(query.get("follow")) or logs.is_finished(pod, container):
            return Reply(200, logs.render(lines[start:], timestamps), _PLAIN)
        key = ObjKey("", "pods", meta(pod)["namespace"], meta(pod)["name"])

        async def follow() -> AsyncIterator[bytes]:
            sent = start
            while True:
                waiter = self.store.waiter()
                current = self.pod_logs.lines(uid, container)
                if sent < len(current):
                    yield logs.render(current[sent:], timestamps)
                    sent = len(current)
                live = self.store.get(key)
                if self.store.closed or live is None or meta(live).get("uid") != uid:
                    return
                if logs.is_finished(live, container):
                    return
                await self.store.wait(waiter, watching.DEFAULT_TIMEOUT)

        return Stream(_PLAIN, follow())

    # --- subresources and the kubelet's side channel

    def _create_subresource(
        self, rtype: ResourceType, namespace: str | None, name: str, sub: str | None, body: Any
    ) -> Reply:
        if rtype.key == ("", "pods") and sub == "binding":
            return Reply(201, self._bind(namespace, name, body))
        if rtype.key == ("", "pods") and sub == "eviction":
            options = (body or {}).get("deleteOptions") or {}
            self.registry.delete(rtype, namespace, name, options)
            return Reply(201, _status_ok({"name": name, "kind": "pods"}))
        if rtype.key == ("", "serviceaccounts") and sub == "token":
            self.registry.get(rtype, namespace, name)
            token = {
                "kind": "TokenRequest",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now()},
                "spec": (body or {}).get("spec") or {},
                "status": {"token": secrets.token_urlsafe(32), "expirationTimestamp": now()},
            }
            return Reply(201, token)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _bind(self, namespace: str | None, name: str, body: Any) -> dict[str, Any]:
        pods = self.catalog.lookup("pods")
        pod = self.registry.get(pods, namespace, name)
        node = ((body or {}).get("target") or {}).get("name")
        if not node:
            raise bad_request("a binding needs target.name")
        current = (pod.get("spec") or {}).get("nodeName")
        if current:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on pods/binding "{name}": pod {name} '
                f'is already assigned to node "{current}"',
            )
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}
        )
        status["conditions"] = conditions
        self.registry.write(pods, pod, new)
        return _status_ok({"name": name, "kind": "pods"})

    def _kubelet_write(self, request: kmock.Request) -> Reply:
        """POST /fakekube/v1/namespaces/{ns}/pods/{name}/log?container=c: a container printed this text."""
        parts = request.url.path[len(KUBELET_PREFIX) :].strip("/").split("/")
        if (
            request.method.value != "POST"
            or len(parts) != 5
            or parts[0] != "namespaces"
            or parts[2:5:2] != ["pods", "log"]
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        pod = self.registry.get(self.catalog.lookup("pods"), parts[1], parts[3])
        container = logs.container_of(pod, request.params.get("container"))
        self.pod_logs.append(meta(pod)["uid"], container, request.text)
        self.store.notify()
        return Reply(201, _status_ok())


def _body(request: kmock.Request) -> Any:
    if request.data is not None:
        return request.data
    if not request.text.strip():
        return None
    try:
        return yaml.safe_load(request.text)
    except yaml.YAMLError as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc


def _delete_options(request: kmock.Request) -> dict[str, Any]:
    options: dict[str, Any] = dict(request.data) if isinstance(request.data, dict) else {}
    query = request.params
    if "propagationPolicy" in query:
        options["propagationPolicy"] = query["propagationPolicy"]
    if "gracePeriodSeconds" in query:
        options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
    if "orphanDependents" in query:
        options["orphanDependents"] = paths.is_true(query["orphanDependents"])
    return options


def dump(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


async def json_lines(events: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for event in events:
        yield dump(event).encode() + b"\n"
