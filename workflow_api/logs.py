"""GET /v1/runs/{id}/logs: the run's output, live while it runs and from the archive in S3 once it ended.

Live, the log is the local backend's `STATE_DIR/runs/<run>/log.txt` when this process runs beside it, else the
run's subject in the log stream WF_LOGS (what the jobs handlers ship from any backend); after the run the results
handler's `results/<consumer>/<run>/log.txt` (all attempts), which outlives the pod or process. `follow=true`
streams Server-Sent Events: `log` events (one or more complete lines each, the id the byte offset after them, so
`Last-Event-ID` resumes), through queued, pending and running, and a last `end` event with the run's final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sse_starlette import ServerSentEvent
from starlette.types import Receive, Scope, Send

from events.envelope import utcnow
from http_serving.sse import EventStream
from schemas.names import LOG_FILE, local_run_dir_name
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.context import ApiContext
from workflow_api.models import RunStatus
from workflow_api.principals import Principal
from workflow_api.problems import Problem, expired, responses
from workflow_api.services.runs import REQUESTED, TERMINAL, owned_run

router = APIRouter(prefix="/v1/runs", tags=["logs"])

_EVENT_BYTES = 64 * 1024
# How long a followed log waits, after the run ended, for its archive when there is no local log to drain.
_ARCHIVE_WAIT_SECONDS = 30.0
# After the run ended, the stream is read until it has been quiet this long: the shipper's last chunks may lag.
_STREAM_QUIET_SECONDS = 1.5


def live_log(context: ApiContext, run_id: str) -> Path | None:
    try:
        return context.runs_dir / local_run_dir_name(run_id) / LOG_FILE
    except ValueError:
        return None


def _read(path: Path | None, start: int, size: int) -> bytes | None:
    """Up to `size` bytes from `start`; None when there is no such file."""
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(size)
    except FileNotFoundError:
        return None


async def archived_log(context: ApiContext, run_id: str) -> str | None:
    result = await context.store.get(ResultDocument, run_id)
    if result is None or result.state != ResultState.PUBLISHED:
        return None
    return result.log_key


async def _expired(context: ApiContext, run_id: str) -> bool:
    result = await context.store.get(ResultDocument, run_id)
    return result is not None and result.state == ResultState.EXPIRED


_LOG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The log as text, or with follow=true Server-Sent Events",
        "content": {"text/plain": {"schema": {"type": "string"}}, "text/event-stream": {"schema": {"type": "string"}}},
    },
    **responses(401, 404, 410, 422, 429),
}


@router.get(
    "/{run_id}/logs",
    summary="The run's log: what was written so far, or followed live until the run ends",
    response_class=StreamingResponse,
    response_model=None,
    responses=_LOG_RESPONSES,
)
async def get_logs(
    run_id: str,
    request: Request,
    follow: Annotated[bool, Query(description="Stream Server-Sent Events until the run ends")] = False,
    offset: Annotated[int, Query(ge=0, le=2**53, description="Start at this byte")] = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    principal: Principal = AUTHENTICATED,
) -> StreamingResponse | EventStream:
    context = api(request)
    status = await owned_run(context, principal, run_id)
    if last_event_id is not None and last_event_id.isdigit():
        offset = int(last_event_id)
    if follow:
        return _open_follow(context, principal, status, offset)
    if status.finished and await _expired(context, run_id):
        raise expired(run_id)
    key = await archived_log(context, run_id) if status.finished else None
    if key is not None:
        return StreamingResponse(_from_archive(context, key, offset), media_type="text/plain; charset=utf-8")
    path = live_log(context, run_id)
    if context.logs is not None and not await asyncio.to_thread(_is_file, path):
        return StreamingResponse(_from_stream(context, run_id, offset), media_type="text/plain; charset=utf-8")
    return StreamingResponse(_from_file(path, offset), media_type="text/plain; charset=utf-8")


def _is_file(path: Path | None) -> bool:
    return path is not None and path.is_file()


async def _from_stream(context: ApiContext, run_id: str, offset: int) -> AsyncIterator[bytes]:
    """What the log stream holds of the run so far (its live log when it is not on this machine)."""
    assert context.logs is not None
    async with contextlib.aclosing(context.logs.read(run_id, offset=offset, idle_seconds=0.2)) as chunks:
        async for chunk in chunks:
            yield chunk


async def _from_file(path: Path | None, offset: int) -> AsyncIterator[bytes]:
    position = offset
    while chunk := await asyncio.to_thread(_read, path, position, 1024 * 1024):
        position += len(chunk)
        yield chunk


async def _from_archive(context: ApiContext, key: str, offset: int) -> AsyncIterator[bytes]:
    head = await context.objects.head(key)
    if head is None or offset >= head.size:
        return
    async for chunk in context.objects.read_range(key, offset):
        yield chunk


def _event(chunk: bytes, end_offset: int) -> ServerSentEvent:
    text = chunk.decode("utf-8", errors="replace")
    return ServerSentEvent(data=text[:-1] if text.endswith("\n") else text, event="log", id=str(end_offset))


class _Follow(EventStream):
    """A follow that gives its consumer's slot back however the stream ends (run ended, deadline, client gone)."""

    def __init__(self, events: AsyncIterator[ServerSentEvent], release: Callable[[], None]) -> None:
        super().__init__(events, ping=15)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


def _open_follow(context: ApiContext, principal: Principal, status: RunStatus, offset: int) -> EventStream:
    settings = context.settings
    consumer = principal.consumer_id
    if not context.follows.acquire(consumer):
        raise Problem(
            429,
            "too-many-follows",
            f"{settings.workflow_api_log_follows_per_consumer} log follows are open for this consumer already; "
            "close one or retry later",
            headers={"Retry-After": "5"},
        )
    try:
        events = _until_deadline(_follow(context, status, offset), offset, settings.workflow_api_log_follow_seconds)
        return _Follow(events, lambda: context.follows.release(consumer))
    except BaseException:
        context.follows.release(consumer)
        raise


async def _until_deadline(
    events: AsyncIterator[ServerSentEvent], offset: int, seconds: float
) -> AsyncIterator[ServerSentEvent]:
    """The events until the follow's deadline, then a `reconnect` event whose id is the offset after the last
    event sent: a client resuming there (Last-Event-ID) misses nothing and gets nothing twice."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    position = offset
    try:
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    event = await anext(events)
            except TimeoutError:
                break
            except StopAsyncIteration:
                return
            if event.id is not None and event.id.isdigit():
                position = int(event.id)
            yield event
        yield ServerSentEvent(
            data=json.dumps({"reason": f"a follow lasts at most {seconds:g} s; resume with Last-Event-ID"}),
            event="reconnect",
            id=str(position),
        )
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _follow(context: ApiContext, status: RunStatus, offset: int) -> AsyncIterator[ServerSentEvent]:
    run_id = status.id
    path = live_log(context, run_id)
    run = await context.store.get(RunDocument, run_id)
    # Requested, not queued yet: its backend is not known. A start whose publish failed and was never retried is
    # never queued: the wait ends, with the state it is in.
    give_up = status.created_at + timedelta(seconds=context.settings.workflow_api_log_queue_wait_seconds)
    while run is None:
        if utcnow() >= give_up:
            reason = (
                "not queued since it was requested; its start may not have reached the bus: "
                "start it again with the same Idempotency-Key"
            )
            yield ServerSentEvent(
                data=json.dumps({"state": REQUESTED, "exit_code": None, "reason": reason}),
                event="end",
                id=str(offset),
            )
            return
        await asyncio.sleep(context.settings.workflow_api_log_poll_seconds)
        run = await context.store.get(RunDocument, run_id)
    local = run.backend == "local" and await asyncio.to_thread(context.runs_dir.is_dir)
    if context.logs is not None and not local:
        async for event in _follow_stream(context, run_id, offset):
            yield event
        return
    position = offset
    poll = context.settings.workflow_api_log_poll_seconds
    while True:
        run = await context.store.get(RunDocument, run_id)
        ended = run is not None and run.state in TERMINAL
        # Drain what is there; while the run goes on, only up to the last complete line.
        while chunk := await asyncio.to_thread(_read, path, position, _EVENT_BYTES):
            if not ended and len(chunk) < _EVENT_BYTES:
                cut = chunk.rfind(b"\n")
                if cut < 0:
                    break
                chunk = chunk[: cut + 1]
            position += len(chunk)
            yield _event(chunk, position)
        if ended and run is not None:
            if await asyncio.to_thread(_read, path, 0, 1) is None:
                # No local log (another backend, or a pod that is gone): the archive has it once published.
                async for event in _archive_events(context, run_id, position):
                    position = int(event.id or position)
                    yield event
            yield ServerSentEvent(
                data=json.dumps({"state": run.state, "exit_code": run.exit_code, "reason": run.reason}),
                event="end",
                id=str(position),
            )
            return
        await asyncio.sleep(poll)


def _lines(pending: bytes, position: int, *, flush: bool) -> tuple[list[ServerSentEvent], bytes, int]:
    """Events for the complete lines in `pending` (all of it when flushing), what is left, and the new offset."""
    cut = len(pending) if flush else pending.rfind(b"\n") + 1
    if cut <= 0:
        return [], pending, position
    position += cut
    return [_event(pending[:cut], position)], pending[cut:], position


async def _follow_stream(context: ApiContext, run_id: str, offset: int) -> AsyncIterator[ServerSentEvent]:
    """The run's chunks from the log stream, all attempts in order (offsets count the bytes of the concatenation,
    attempt headers included), until the run ended and the stream went quiet."""
    assert context.logs is not None
    position = offset  # bytes handed to the client
    pending = b""
    quiet_since: float | None = None
    loop = asyncio.get_running_loop()
    poll = context.settings.workflow_api_log_poll_seconds
    async with contextlib.aclosing(context.logs.follow(run_id, offset=offset, idle_seconds=poll)) as chunks:
        async for chunk in chunks:
            if chunk is not None:
                quiet_since = None
                pending += chunk
                events, pending, position = _lines(pending, position, flush=False)
                for event in events:
                    yield event
                continue
            run = await context.store.get(RunDocument, run_id)
            if run is None or run.state not in TERMINAL:
                quiet_since = None
                continue
            quiet_since = quiet_since or loop.time()
            if loop.time() - quiet_since < _STREAM_QUIET_SECONDS:
                continue
            events, pending, position = _lines(pending, position, flush=True)
            for event in events:
                yield event
            yield ServerSentEvent(
                data=json.dumps({"state": run.state, "exit_code": run.exit_code, "reason": run.reason}),
                event="end",
                id=str(position),
            )
            return


async def _archive_events(context: ApiContext, run_id: str, offset: int) -> AsyncIterator[ServerSentEvent]:
    deadline = asyncio.get_running_loop().time() + _ARCHIVE_WAIT_SECONDS
    key = await archived_log(context, run_id)
    while key is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(context.settings.workflow_api_log_poll_seconds)
        key = await archived_log(context, run_id)
    if key is None:
        return
    position = offset
    pending = b""
    async for chunk in _from_archive(context, key, offset):
        pending += chunk
        cut = pending.rfind(b"\n")
        if cut >= 0:
            position += cut + 1
            yield _event(pending[: cut + 1], position)
            pending = pending[cut + 1 :]
    if pending:
        position += len(pending)
        yield _event(pending, position)
