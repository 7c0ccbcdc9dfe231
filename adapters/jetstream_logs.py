"""The log stream on JetStream: a subject per run (events.subjects.log_subject), a message per chunk, with the
attempt and byte offset in headers and `run:attempt:offset` as Nats-Msg-Id, so a re-shipped chunk is dropped.

The jobs handlers write it (JetStreamLogSink); the WorkflowApi and the dashboard read it back through one reader
(JetStreamLogReader), so that both show the same bytes at the same offsets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from events.subjects import LOG_STREAM, log_subject
from schemas.names import ATTEMPT_HEADER, OFFSET_HEADER, attempt_separator


class JetStreamLogSink:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def append(self, run_id: str, attempt: int, offset: int, chunk: bytes) -> None:
        headers = {
            "Nats-Msg-Id": f"{run_id}:{attempt}:{offset}",
            ATTEMPT_HEADER: str(attempt),
            OFFSET_HEADER: str(offset),
            "content-type": "text/plain",
        }
        await self.js.publish(log_subject(run_id), chunk, stream=LOG_STREAM, headers=headers)

    async def shipped(self, run_id: str, attempt: int) -> int | None:
        try:
            last = await self.js.get_last_msg(LOG_STREAM, log_subject(run_id))
        except NotFoundError:
            return 0
        headers = last.headers or {}
        stored_attempt = int(headers.get(ATTEMPT_HEADER, "0"))
        if stored_attempt > attempt:
            return None
        if stored_attempt < attempt:
            return 0
        return int(headers.get(OFFSET_HEADER, "0")) + len(last.data or b"")


class JetStreamLogReader:
    """A run's chunks, oldest first, from an ordered consumer of its subject (nothing durable is left behind)."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def read(self, run_id: str, *, offset: int = 0, idle_seconds: float = 0.3) -> AsyncGenerator[bytes, None]:
        async with contextlib.aclosing(self.follow(run_id, offset=offset, idle_seconds=idle_seconds)) as chunks:
            async for chunk in chunks:
                if chunk is None:
                    return
                yield chunk

    async def follow(self, run_id: str, *, offset: int = 0, idle_seconds: float) -> AsyncGenerator[bytes | None, None]:
        subscription = await self.js.subscribe(
            log_subject(run_id), ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        seen = 0  # bytes of all attempts, separators included, read so far
        attempt = 1
        try:
            while True:
                try:
                    message = await subscription.next_msg(timeout=idle_seconds)
                except (TimeoutError, NatsTimeout):
                    yield None
                    continue
                data: bytes = message.data or b""
                number = int((message.headers or {}).get(ATTEMPT_HEADER, "1") or 1)
                if number > attempt:
                    data, attempt = attempt_separator(number).encode() + data, number
                start, seen = seen, seen + len(data)
                if data and seen > offset:
                    yield data[max(0, offset - start) :]
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
