"""`gxwf events tail`: events as they happen (or from the start), for people (Rich) and scripts (JSON lines)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import nats
from nats.js.api import ConsumerConfig, DeliverPolicy
from rich.console import Console
from rich.text import Text

_STYLE = {"succeeded": "green", "failed": "red", "timed_out": "red", "stopped": "yellow", "requested": "cyan"}
_KEY_FIELDS = (
    "run_id",
    "transfer_process_id",
    "consumer_id",
    "deployment_id",
    "asset_id",
    "exit_code",
    "reason",
)


def describe(event: dict[str, Any]) -> Text:
    """One line a person can read: time, type, and the fields that identify what it is about."""
    etype = str(event.get("type") or event.get("original_subject") or "?")
    data = event.get("data") if isinstance(event.get("data"), dict) else event
    assert isinstance(data, dict)
    details = " ".join(f"{k}={data[k]}" for k in _KEY_FIELDS if data.get(k) not in (None, ""))
    if "error" in data and isinstance(data["error"], dict):
        details += f" error={data['error'].get('type')}: {data['error'].get('message')}"
    stamp = str(event.get("time") or event.get("failed_at") or "")[11:23]
    style = next((v for k, v in _STYLE.items() if etype.endswith(k)), "white")
    if etype.startswith("dlq.") or "original_subject" in event:
        style = "bold red"
    line = Text()
    line.append(f"{stamp:12} ", style="dim")
    line.append(f"{etype:32} ", style=style)
    line.append(details)
    return line


async def tail(
    nats_url: str,
    subjects: Sequence[str],
    *,
    replay: bool,
    emit: Callable[[str, dict[str, Any]], None],
    count: int | None = None,
    timeout: float | None = None,
) -> int:
    """Print events until interrupted, `count` events arrived, or `timeout` seconds passed with none."""
    nc = await nats.connect(nats_url, connect_timeout=5, max_reconnect_attempts=-1)
    queue: asyncio.Queue[Any] = asyncio.Queue()
    seen = 0
    try:
        js = nc.jetstream()
        policy = DeliverPolicy.ALL if replay else DeliverPolicy.NEW
        for subject in subjects:
            await js.subscribe(
                subject, ordered_consumer=True, config=ConsumerConfig(deliver_policy=policy), cb=queue.put
            )
        while count is None or seen < count:
            try:
                async with asyncio.timeout(timeout):
                    msg = await queue.get()
            except TimeoutError:
                break
            try:
                event = json.loads(msg.data)
            except ValueError:
                event = {"type": msg.subject, "data": {"raw": msg.data[:200].decode("utf-8", "replace")}}
            emit(msg.subject, event if isinstance(event, dict) else {"type": msg.subject, "data": event})
            seen += 1
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
    return seen


def json_emitter() -> Callable[[str, dict[str, Any]], None]:
    def emit(subject: str, event: dict[str, Any]) -> None:
        print(json.dumps({"subject": subject, "event": event}, separators=(",", ":")), flush=True)

    return emit


def rich_emitter(console: Console) -> Callable[[str, dict[str, Any]], None]:
    def emit(subject: str, event: dict[str, Any]) -> None:
        console.print(describe(event))

    return emit
