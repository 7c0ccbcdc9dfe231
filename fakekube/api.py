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
import functools
import warnings
from typing import Any

import attrs
import kmock
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
from fakekube.store import Store, meta
from fakekube.subresources import KUBELET_PREFIX, Subresources
from fakekube.wire import JSON, Reply, Stream, delete_options, dump, json_lines, request_body, status_ok

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_ACTIONS = {
    "get": kmock.action.FETCH,
    "list": kmock.action.LIST,
    "watch": kmock.action.WATCH,
    "create": kmock.action.CREATE,
    "patch": kmock.action.UPDATE,
    "delete": kmock.action.DELETE,
}


class _Claimed(Exception):
    """Raised by the fallback reaction: no reaction of a test took the request, fakekube answers it."""


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
    subresources: Subresources = attrs.field(init=False)
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
        self.subresources = Subresources(self.catalog, self.store, self.registry, self.pod_logs)
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
                result: Reply | Stream = self.subresources.kubelet_write(request)
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
            return Stream(JSON, json_lines(watching.events(self.store, rtype, namespace, route.name, query)))
        if verb == "list":
            return Reply(200, self._list(rtype, ns, query))
        if verb == "get":
            assert name is not None
            obj = self.registry.get(rtype, ns, name)
            if sub == "log":
                return self.subresources.log(obj, query)
            return Reply(200, obj)
        if verb == "create":
            body = request_body(request)
            if name is not None:
                return self.subresources.create(rtype, ns, name, sub, body)
            return Reply(201, self.registry.create(rtype, ns, body, dry_run=dry_run))
        if verb == "update":
            assert name is not None
            return Reply(
                200, self.registry.replace(rtype, ns, name, request_body(request), subresource=sub, dry_run=dry_run)
            )
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
                request_body(request),
                content_type,
                subresource=sub,
                field_manager=query.get("fieldManager"),
                dry_run=dry_run,
            )
            return Reply(201 if created else 200, obj)
        if verb == "delete":
            assert name is not None
            obj, removed = self.registry.delete(rtype, ns, name, delete_options(request), dry_run=dry_run)
            return Reply(200 if removed else 202, obj)
        if verb == "deletecollection":
            items = self._select(rtype, ns, query)
            self.registry.delete_collection(rtype, ns, items, delete_options(request))
            return Reply(200, status_ok())
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
