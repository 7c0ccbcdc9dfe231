"""/v1/runs/{id}/results: list with sizes and sha256, download (ranges), presigned URLs, the whole run as one archive.

While a download streams it holds the lease `result-download:<run id>` (renewed until the last byte), so the
retention sweeper never deletes results mid-download. Leases are exclusive: concurrent downloads of one run from
other processes find it held, which protects the results just the same, and take it over once it lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import tarfile
import time
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from events.envelope import utcnow
from schemas.names import LOG_FILE, result_download_lease
from schemas.provisioning import ResultDocument, ResultState
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.context import ApiContext
from workflow_api.models import PresignedDownload, ResultFileInfo, ResultList
from workflow_api.principals import Principal
from workflow_api.problems import Problem, expired, not_found, responses
from workflow_api.services.runs import owned_run

router = APIRouter(prefix="/v1/runs", tags=["results"])
log = structlog.get_logger("gxwf.workflow_api")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BINARY = {"schema": {"type": "string", "format": "binary"}}


async def published(context: ApiContext, principal: Principal, run_id: str) -> tuple[str, ResultDocument]:
    status = await owned_run(context, principal, run_id)
    result = await context.store.get(ResultDocument, run_id)
    if result is not None and result.state == ResultState.EXPIRED and result.consumer_id == principal.consumer_id:
        raise expired(run_id)
    if result is not None and result.state == ResultState.FAILED and result.consumer_id == principal.consumer_id:
        # Publishing gave up for good: without Retry-After, a client does not wait for results that never come.
        detail = f"run {run_id} ended ({status.state}); its results could not be published: {result.reason or '?'}"
        raise Problem(409, "results-failed", detail)
    if result is None or result.state != ResultState.PUBLISHED or result.consumer_id != principal.consumer_id:
        if not status.finished:
            detail = f"run {run_id} is {status.state}; its results are published when it ends"
        else:
            detail = f"run {run_id} ended ({status.state}); its results are being published, retry in a moment"
        raise Problem(409, "results-not-ready", detail, headers={"Retry-After": "2"})
    return status.state, result


def _file(result: ResultDocument, name: str) -> dict[str, Any]:
    for entry in result.files:
        if entry.get("name") == name:
            return entry
    raise not_found("result file", name)


def _log_entry(result: ResultDocument) -> dict[str, Any] | None:
    return {"name": LOG_FILE, "key": result.log_key} if result.log_key is not None else None


@contextlib.asynccontextmanager
async def download_lease(context: ApiContext, run_id: str) -> AsyncIterator[Callable[[], bool]]:
    """Hold `result-download:<run>` while the download lasts, renewed, but no longer than the longest lease in
    all: what it yields says whether the lease still holds (a download past it stops)."""
    settings = context.settings
    ttl = settings.workflow_api_download_lease_seconds
    name = result_download_lease(run_id)
    loop = asyncio.get_running_loop()
    until = loop.time() + settings.workflow_api_download_lease_max_seconds

    async def hold() -> None:
        with contextlib.suppress(Exception):
            await context.leases.hold(name, context.holder, min(ttl, max(until - loop.time(), 0.001)))

    async def renew() -> None:
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(ttl / 3, left))
            if until - loop.time() > 0:
                await hold()

    await hold()
    task = asyncio.create_task(renew())
    try:
        yield lambda: loop.time() < until
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _leased(context: ApiContext, run_id: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The chunks while the download lease holds; past its longest time the response ends short (Content-Length
    tells the client, which resumes with Range)."""
    async with download_lease(context, run_id) as held:
        async for chunk in chunks:
            if not held():
                log.warning("download cut at the longest lease", run=run_id)
                return
            yield chunk


@router.get(
    "/{run_id}/results",
    summary="The run's result files with sizes and sha256",
    response_model=ResultList,
    responses=responses(401, 404, 409, 410),
)
async def list_results(run_id: str, request: Request, principal: Principal = AUTHENTICATED) -> ResultList:
    context = api(request)
    state, result = await published(context, principal, run_id)
    base = f"/v1/runs/{quote(run_id, safe='')}"
    return ResultList(
        run_id=run_id,
        run_state=state,
        files=[
            ResultFileInfo(
                name=f["name"],
                size=int(f["size"]),
                sha256=f.get("sha256"),
                content_type=f.get("content_type"),
                url=f"{base}/results/files/{quote(f['name'])}",
            )
            for f in result.files
        ],
        log_url=f"{base}/logs",
        archive_url=f"{base}/results/archive",
    )


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `bytes=` range; None to send everything; 416 when it cannot be satisfied."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: RFC 9110 lets us answer with the whole body
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> Problem:
    return Problem(
        416, "range-not-satisfiable", f"the file has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
    )


@router.get(
    "/{run_id}/results/files/{name:path}",
    summary="Download one result file (streamed; Range requests answer 206)",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The file", "content": {"application/octet-stream": _BINARY}},
        206: {"description": "The requested range", "content": {"application/octet-stream": _BINARY}},
        **responses(401, 404, 409, 410, 416),
    },
)
async def download_file(
    run_id: str,
    name: str,
    request: Request,
    range_header: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    principal: Principal = AUTHENTICATED,
) -> StreamingResponse:
    context = api(request)
    _, result = await published(context, principal, run_id)
    entry = _file(result, name)
    size = int(entry["size"])
    span = _byte_range(range_header, size) if size > 0 else None
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1])}",
    }
    if entry.get("sha256"):
        headers["ETag"] = f'"{entry["sha256"]}"'
        headers["X-Checksum-Sha256"] = str(entry["sha256"])
    status = 200
    start, end = 0, size - 1
    if span is not None:
        start, end = span
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(max(0, end - start + 1))

    async def body() -> AsyncIterator[bytes]:
        if size == 0:
            return
        async for chunk in _leased(context, run_id, context.objects.read_range(entry["key"], start, end)):
            yield chunk

    return StreamingResponse(body(), status_code=status, headers=headers, media_type="application/octet-stream")


@router.get(
    "/{run_id}/results/urls/{name:path}",
    summary="A presigned URL to download one result file straight from the object store",
    response_model=PresignedDownload,
    responses=responses(401, 404, 409, 410),
)
async def presigned_download(
    run_id: str, name: str, request: Request, principal: Principal = AUTHENTICATED
) -> PresignedDownload:
    context = api(request)
    _, result = await published(context, principal, run_id)
    entry = _file(result, name)
    settings = context.settings
    seconds = int(min(settings.workflow_api_download_url_seconds, settings.workflow_api_download_lease_max_seconds))
    # The URL outlives this request: hold the lease for its (short) validity, so retention waits for it too.
    with contextlib.suppress(Exception):
        await context.leases.hold(result_download_lease(run_id), context.holder, float(seconds))
    url = await context.objects.presigned_url("GET", entry["key"], expires_seconds=seconds)
    return PresignedDownload(
        url=url, expires_at=utcnow() + timedelta(seconds=seconds), size=int(entry["size"]), sha256=entry.get("sha256")
    )


class _Sink(io.RawIOBase):
    """A write-only, unseekable file for zipfile: what was written is taken out after each write."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


@router.get(
    "/{run_id}/results/archive",
    summary="Every result file and the log as one streamed archive (zip or tar)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The archive",
            "content": {"application/zip": _BINARY, "application/x-tar": _BINARY},
        },
        **responses(401, 404, 409, 410, 422),
    },
)
async def download_archive(
    run_id: str,
    request: Request,
    format: Annotated[str, Query(pattern=r"^(zip|tar)$", description="zip (default) or tar")] = "zip",
    principal: Principal = AUTHENTICATED,
) -> StreamingResponse:
    context = api(request)
    _, result = await published(context, principal, run_id)
    entries = [{"name": f"outputs/{f['name']}", "key": f["key"], "size": int(f["size"])} for f in result.files]
    log = _log_entry(result)
    if log is not None:
        head = await context.objects.head(log["key"])
        if head is not None:
            entries.append({"name": LOG_FILE, "key": log["key"], "size": head.size})
    stream = _zip(context, entries) if format == "zip" else _tar(context, entries)

    async def body() -> AsyncIterator[bytes]:
        async for chunk in _leased(context, run_id, stream):
            yield chunk

    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return StreamingResponse(
        body(),
        media_type="application/zip" if format == "zip" else "application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{safe}-results.{format}"'},
    )


async def _zip(context: ApiContext, entries: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    sink = _Sink()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry["name"], date_time=stamp)
            info.file_size = entry["size"]
            with archive.open(info, "w", force_zip64=entry["size"] >= 2**31) as member:
                async for chunk in context.objects.read_range(entry["key"]):
                    member.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()


async def _tar(context: ApiContext, entries: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    now = time.time()
    for entry in entries:
        info = tarfile.TarInfo(entry["name"])
        info.size = entry["size"]
        info.mtime = int(now)
        info.mode = 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        if entry["size"]:
            async for chunk in context.objects.read_range(entry["key"]):
                yield chunk
        yield b"\0" * (-entry["size"] % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
