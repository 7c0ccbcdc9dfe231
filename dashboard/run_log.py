"""A run's log as the dashboard shows it: its last megabyte, from the archive once the run ended, from the run
directory while a local run runs, else from the log stream (a run elsewhere, such as a Kubernetes pod)."""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path

from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import OpsQueries
from schemas.names import LOG_FILE, local_run_dir_name

LOG_TAIL_BYTES = 1024 * 1024


async def read_log(
    run_id: str,
    *,
    queries: OpsQueries,
    objects: ObjectStore | None,
    runs_dir: Path | None,
    logs: LogReader,
) -> tuple[str, str] | None:
    """The log's last LOG_TAIL_BYTES and where it came from (archived, live or stream); None when nowhere."""
    result = await queries.result(run_id)
    if result and result.get("log_key") and objects is not None:
        data = await objects.get_bytes(str(result["log_key"]))
        return _last(data), "archived"
    if runs_dir is not None:
        path = runs_dir / local_run_dir_name(run_id) / LOG_FILE
        if path.is_file():
            with path.open("rb") as handle:
                size = path.stat().st_size
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                data = handle.read()
            return _last(data), "live"
    streamed = await _streamed_log(logs, run_id, LOG_TAIL_BYTES)
    if streamed is not None:
        return _last(streamed), "stream"
    return None


def _last(data: bytes) -> str:
    return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")


async def _streamed_log(logs: LogReader, run_id: str, keep: int) -> bytes | None:
    """The last `keep` bytes of what the log stream holds of the run; None when it holds nothing."""
    chunks: deque[bytes] = deque()
    size = 0
    async with contextlib.aclosing(logs.read(run_id)) as stored:
        async for data in stored:
            chunks.append(data)
            size += len(data)
            while size - len(chunks[0]) >= keep:
                size -= len(chunks.popleft())
    return b"".join(chunks) if chunks else None
