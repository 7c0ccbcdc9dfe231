"""The log stream on JetStream: a subject per run (events.subjects.log_subject), a message per chunk, with the
attempt and byte offset in headers and `run:attempt:offset` as Nats-Msg-Id, so a re-shipped chunk is dropped."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from events.subjects import LOG_STREAM, log_subject
from schemas.names import ATTEMPT_HEADER, OFFSET_HEADER


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
