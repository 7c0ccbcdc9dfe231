"""WorkflowClient: every WorkflowApi call, typed; uploads and downloads streamed, checksums verified."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import tarfile
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from gxwf_client.models import (
    Asset,
    AssetDetail,
    Input,
    LogEvent,
    ResultList,
    RunAccepted,
    RunStatus,
    RunSummary,
)

M = TypeVar("M", bound=BaseModel)
Progress = Callable[[int], None]
_CHUNK = 1024 * 1024
_END_STATES = {"succeeded", "failed", "stopped", "timed_out"}


class ApiError(Exception):
    """The API answered with an error (problem+json): its status, detail, and the fields it names."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])
        super().__init__(f"{status}: {self.detail}")


class ChecksumMismatch(Exception):
    """A downloaded file does not hash to the sha256 the API listed (the partial file is removed)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


async def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    await response.aread()
    try:
        problem = response.json()
    except ValueError:
        problem = {"detail": response.text[:500] or response.reason_phrase}
    if not isinstance(problem, dict):
        problem = {"detail": str(problem)}
    raise ApiError(response.status_code, problem)


class WorkflowClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
        )

    async def __aenter__(self) -> WorkflowClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get(self, path: str, model: type[M], **params: Any) -> M:
        response = await self.http.get(path, params={k: v for k, v in params.items() if v is not None})
        await _raise_for(response)
        return model.model_validate(response.json())

    async def _pages(self, path: str, model: type[M], **params: Any) -> list[M]:
        items: list[M] = []
        url: str | None = path
        query: dict[str, Any] | None = {k: v for k, v in params.items() if v is not None}
        while url is not None:
            response = await self.http.get(url, params=query)
            await _raise_for(response)
            body = response.json()
            items += [model.model_validate(item) for item in body["items"]]
            url, query = body.get("next"), None
        return items

    # -- assets ------------------------------------------------------------------------------------------------

    async def assets(self) -> list[Asset]:
        return await self._pages("/v1/assets", Asset, limit=200)

    async def asset(self, asset_id: str, version: int | None = None) -> AssetDetail:
        return await self._get(f"/v1/assets/{quote(asset_id, safe='')}", AssetDetail, version=version)

    # -- inputs ------------------------------------------------------------------------------------------------

    async def upload_file(
        self, path: Path, name: str, *, progress: Progress | None = None, checksum: bool = True
    ) -> Input:
        """Upload one file streamed from disk; with `checksum` its sha256 goes along and the API verifies it."""
        digest = await asyncio.to_thread(sha256_of, path) if checksum else None
        return await self._upload(path, name, "file", digest, progress, filename=path.name)

    async def upload_directory(self, path: Path, name: str, *, progress: Progress | None = None) -> Input:
        """Upload a directory tree as a tar archive (built in a temporary file), unpacked by the API."""
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / "input.tar"
            await asyncio.to_thread(_tar_directory, path, archive)
            digest = await asyncio.to_thread(sha256_of, archive)
            return await self._upload(archive, name, "directory", digest, progress, content_type="application/x-tar")

    async def _upload(
        self,
        path: Path,
        name: str,
        kind: str,
        digest: str | None,
        progress: Progress | None,
        *,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> Input:
        size = (await asyncio.to_thread(path.stat)).st_size

        async def body() -> AsyncIterator[bytes]:
            with path.open("rb") as handle:
                while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                    if progress is not None:
                        progress(len(chunk))
                    yield chunk

        headers = {"Content-Type": content_type, "Content-Length": str(size)}
        if digest:
            headers["X-Checksum-Sha256"] = digest
        params = {"name": name, "kind": kind} | ({"filename": filename} if filename else {})
        response = await self.http.post("/v1/inputs", params=params, content=body(), headers=headers)
        await _raise_for(response)
        return Input.model_validate(response.json())

    async def inputs(self) -> list[Input]:
        return await self._pages("/v1/inputs", Input, limit=200)

    async def input(self, input_id: str) -> Input:
        return await self._get(f"/v1/inputs/{quote(input_id, safe='')}", Input)

    async def delete_input(self, input_id: str) -> None:
        response = await self.http.delete(f"/v1/inputs/{quote(input_id, safe='')}")
        await _raise_for(response)

    # -- runs --------------------------------------------------------------------------------------------------

    async def start_run(
        self,
        asset_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        inputs: dict[str, str] | None = None,
        version: int | None = None,
        idempotency_key: str | None = None,
    ) -> RunAccepted:
        body: dict[str, Any] = {"asset_id": asset_id, "parameters": parameters or {}, "inputs": inputs or {}}
        if version is not None:
            body["version"] = version
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self.http.post("/v1/runs", json=body, headers=headers)
        await _raise_for(response)
        return RunAccepted.model_validate(response.json())

    async def stop_run(self, run_id: str) -> RunAccepted:
        response = await self.http.post(f"/v1/runs/{quote(run_id, safe='')}/stop")
        await _raise_for(response)
        return RunAccepted.model_validate(response.json())

    async def run(self, run_id: str) -> RunStatus:
        return await self._get(f"/v1/runs/{quote(run_id, safe='')}", RunStatus)

    async def runs(
        self, *, state: str | None = None, asset: str | None = None, since: datetime | None = None
    ) -> list[RunSummary]:
        return await self._pages(
            "/v1/runs", RunSummary, state=state, asset=asset, since=since.isoformat() if since else None, limit=200
        )

    async def wait(self, run_id: str, *, interval: float = 0.5, timeout: float | None = None) -> RunStatus:
        """Poll until the run ended and its results are published (or the run is known to have none)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        while True:
            status = await self.run(run_id)
            if status.finished and status.results_url is not None:
                return status
            if deadline is not None and loop.time() > deadline:
                return status
            await asyncio.sleep(interval)

    # -- logs --------------------------------------------------------------------------------------------------

    async def logs(self, run_id: str, *, offset: int = 0) -> str:
        response = await self.http.get(f"/v1/runs/{quote(run_id, safe='')}/logs", params={"offset": offset})
        await _raise_for(response)
        return response.text

    async def follow_logs(self, run_id: str, *, offset: int = 0, reconnects: int = 5) -> AsyncGenerator[LogEvent, None]:
        """The log as it grows, until the run ends (the last event is `end`, its data the final state as JSON).
        A dropped stream, or one the server ended at its deadline for a follow (a `reconnect` event), is resumed
        from the last offset seen (Last-Event-ID).

        Close it in the task that iterates it (`contextlib.aclosing`) when stopping before `end`; stopping at
        `end` leaves nothing open, as the response is closed before `end` is handed over."""
        position = offset
        attempts = 0
        while True:
            end: LogEvent | None = None
            try:
                # Closed here, in the iterating task: left to the garbage collector, the response's generators
                # would be closed from the event loop's finaliser while still marked running ("aclose(): ...").
                async with contextlib.aclosing(self._sse(run_id, position)) as events:
                    async for event in events:
                        attempts = 0
                        if event.offset is not None:
                            position = event.offset
                        if event.kind == "end":
                            end = event
                            break
                        if event.kind == "reconnect":
                            # The server's deadline for one follow: it closes next, and the loop resumes.
                            continue
                        yield event
            except (httpx.TransportError, httpx.RemoteProtocolError):
                attempts += 1
                if attempts > reconnects:
                    raise
                await asyncio.sleep(min(0.2 * 2**attempts, 5.0))
                continue
            if end is not None:
                yield end
                return
            # The server closed without an end event (restart): resume.
            attempts += 1
            if attempts > reconnects:
                return
            await asyncio.sleep(0.2)

    async def _sse(self, run_id: str, offset: int) -> AsyncGenerator[LogEvent, None]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(offset)}
        timeout = httpx.Timeout(None, connect=10.0)
        async with self.http.stream(
            "GET",
            f"/v1/runs/{quote(run_id, safe='')}/logs",
            params={"follow": "true"},
            headers=headers,
            timeout=timeout,
        ) as response:
            await _raise_for(response)
            kind, ident = "message", None
            data: list[str] = []
            async for line in response.aiter_lines():
                if line == "":
                    if data:
                        yield LogEvent(kind, "\n".join(data), int(ident) if ident and ident.isdigit() else None)
                    kind, ident, data = "message", None, []
                    continue
                if line.startswith(":"):
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "id":
                    ident = value
                elif field == "data":
                    data.append(value)

    # -- results -----------------------------------------------------------------------------------------------

    async def results(self, run_id: str) -> ResultList:
        return await self._get(f"/v1/runs/{quote(run_id, safe='')}/results", ResultList)

    async def download(
        self, run_id: str, name: str, dest: Path, *, progress: Progress | None = None, sha256: str | None = None
    ) -> Path:
        """Stream one result file to `dest` and check its sha256 (the one listed, unless given)."""
        if sha256 is None:
            listed = {f.name: f for f in (await self.results(run_id)).files}
            if name not in listed:
                raise ApiError(404, {"detail": f"run {run_id} has no result file {name}"})
            sha256 = listed[name].sha256
        path = f"/v1/runs/{quote(run_id, safe='')}/results/files/{quote(name)}"
        await self._stream_to(path, dest, progress, {})
        if sha256 is not None:
            actual = await asyncio.to_thread(sha256_of, dest)
            if actual != sha256:
                await asyncio.to_thread(dest.unlink, missing_ok=True)
                raise ChecksumMismatch(f"{name}: sha256 {actual}, the API listed {sha256}")
        return dest

    async def download_archive(
        self, run_id: str, dest: Path, *, archive_format: str = "zip", progress: Progress | None = None
    ) -> Path:
        path = f"/v1/runs/{quote(run_id, safe='')}/results/archive"
        await self._stream_to(path, dest, progress, {"format": archive_format})
        return dest

    async def _stream_to(self, path: str, dest: Path, progress: Progress | None, params: dict[str, str]) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        async with self.http.stream("GET", path, params=params) as response:
            await _raise_for(response)
            with part.open("wb") as handle:
                async for chunk in response.aiter_bytes(_CHUNK):
                    await asyncio.to_thread(handle.write, chunk)
                    if progress is not None:
                        progress(len(chunk))
        part.replace(dest)


def _tar_directory(source: Path, archive: Path) -> None:
    with tarfile.open(archive, "w") as tar:
        for path in sorted(source.rglob("*")):
            # Regular files only: the API refuses links, and directories are implied by the files' paths.
            if path.is_file() and not path.is_symlink():
                tar.add(path, arcname=str(path.relative_to(source)), recursive=False)


def end_state(event: LogEvent) -> dict[str, Any]:
    """The final state an `end` event carries."""
    try:
        value = json.loads(event.data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def is_end_state(state: str) -> bool:
    return state in _END_STATES
