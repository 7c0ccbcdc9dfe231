"""A run's log as the dashboard shows it: its last megabyte, from the archive once the run ended, from the run
directory while a local run runs, else from the log stream (a run elsewhere, such as a Kubernetes pod)."""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.mongo_store import MongoStateStore
from adapters.s3_objects import S3ObjectStore
from events.subjects import log_subject

LOG_TAIL_BYTES = 1024 * 1024


async def read_log(
    run_id: str,
    *,
    store: MongoStateStore,
    objects: S3ObjectStore | None,
    runs_dir: Path | None,
    js: JetStreamContext,
) -> tuple[str, str] | None:
    """The log's last LOG_TAIL_BYTES and where it came from (archived, live or stream); None when nowhere."""
    result = await store.db["results"].find_one({"_id": run_id}, {"log_key": 1})
    if result and result.get("log_key") and objects is not None:
        data = await objects.get_bytes(str(result["log_key"]))
        return _last(data), "archived"
    if runs_dir is not None:
        path = runs_dir / run_id / "log.txt"
        if path.is_file():
            with path.open("rb") as handle:
                size = path.stat().st_size
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                data = handle.read()
            return _last(data), "live"
    streamed = await _streamed_log(js, run_id, LOG_TAIL_BYTES)
    if streamed is not None:
        return _last(streamed), "stream"
    return None


def _last(data: bytes) -> str:
    return data[-LOG_TAIL_BYTES:].decode("utf-8", "replace")


async def _streamed_log(js: JetStreamContext, run_id: str, keep: int) -> bytes | None:
    """The last `keep` bytes of what the log stream holds of the run; None when it holds nothing."""
    subscription = await js.subscribe(
        log_subject(run_id), ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    chunks: deque[bytes] = deque()
    size = 0
    attempt = 1
    try:
        while True:
            try:
                message = await subscription.next_msg(timeout=0.3)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            number = int((message.headers or {}).get("Gxwf-Attempt", "1") or 1)
            data = message.data or b""
            if number > attempt:
                # As in the archived log.txt: a separator before each further attempt.
                data, attempt = f"\n=== attempt {number} ===\n".encode() + data, number
            chunks.append(data)
            size += len(data)
            while size - len(chunks[0]) >= keep:
                size -= len(chunks.popleft())
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    return b"".join(chunks) if chunks else None
