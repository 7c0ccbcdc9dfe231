"""`gxwf events tail` across streams WF and WF_DLQ: one time order, each line labelled with its stream, and
what --count means with and without --replay, on the real NATS."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats

from events import subjects as s
from events.delivery import build_dead_letter
from events.envelope import new_event
from events.payloads.dead_letter import HandlerError
from events.payloads.run import RunRequested, RunSpec
from events.streams import ensure_streams
from tests.cli.test_bad_input import gxwf
from tests.cli.test_live_commands import env_for

if TYPE_CHECKING:
    from devstack import StackEndpoints


async def publish_interleaved(stack: StackEndpoints, marker: str) -> list[tuple[str, str]]:
    """WF, DLQ, WF, DLQ, WF, each stored after the one before: (stream, run id) in time order."""
    nc = await nats.connect(stack.nats)
    js = nc.jetstream()
    await ensure_streams(js)
    order: list[tuple[str, str]] = []
    for i in range(3):
        run_id = f"{marker}-{i}"
        event = new_event(
            s.RUN_REQUESTED,
            RunRequested(run_id=run_id, consumer_id="c", asset_id="a", spec=RunSpec(command=["true"])),
        )
        body = event.model_dump_json().encode()
        ack = await js.publish(s.RUN_REQUESTED, body, headers={"Nats-Msg-Id": event.id})
        order.append((s.STREAM, run_id))
        if i == 2:
            break
        error = HandlerError(type="RuntimeError", message="boom")
        letter = build_dead_letter(s.RUN_REQUESTED, body, "jobs-run-requested", error, 5, ack.seq)
        await js.publish(
            s.dead_letter_subject(s.RUN_REQUESTED),
            letter.model_dump_json().encode(),
            stream=s.DLQ_STREAM,
        )
        order.append((s.DLQ_STREAM, run_id))
    await nc.close()
    return order


def tail(stack: StackEndpoints, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gxwf", "events", "tail", *args],
        env={**env_for(stack, tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_of(line: dict[str, Any]) -> str:
    event = line["event"]
    data = (event.get("original") or {}).get("data") if line["stream"] == s.DLQ_STREAM else event["data"]
    return str(data["run_id"])


async def test_replay_merges_events_and_dead_letters_in_time_order(stack: StackEndpoints, tmp_path: Path) -> None:
    marker = f"order-{uuid.uuid4().hex[:8]}"
    order = await publish_interleaved(stack, marker)

    result = await asyncio.to_thread(tail, stack, tmp_path, "--replay", "--json", "--grep", marker, "--timeout", "2")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["stream"], run_of(line)) for line in lines] == order
    # Both streams number from 1: the stream says which sequence a line's is.
    assert all(isinstance(line["seq"], int) for line in lines)

    human = await asyncio.to_thread(tail, stack, tmp_path, "--replay", "--grep", marker, "--timeout", "2")
    assert human.returncode == 0, human.stderr
    labels = [line.split()[0] for line in human.stdout.splitlines()]
    expected = [("WF" if line["stream"] == s.STREAM else "DLQ") + f"#{line['seq']}" for line in lines]
    assert labels == expected


async def test_count_is_the_first_n_from_a_start_and_the_last_n_otherwise(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    marker = f"count-{uuid.uuid4().hex[:8]}"
    order = await publish_interleaved(stack, marker)

    first = await asyncio.to_thread(tail, stack, tmp_path, "--replay", "--json", "--grep", marker, "--count", "3")
    assert first.returncode == 0, first.stderr
    assert [(line["stream"], run_of(line)) for line in map(json.loads, first.stdout.splitlines())] == order[:3]

    # No --replay, no --since: the last three already stored, at once (no --timeout needed to end it).
    last = await asyncio.to_thread(tail, stack, tmp_path, "--json", "--grep", marker, "--count", "3")
    assert last.returncode == 0, last.stderr
    assert [(line["stream"], run_of(line)) for line in map(json.loads, last.stdout.splitlines())] == order[-3:]

    # Unfiltered, each stream is read only from its last N sequences; merged, still the newest overall.
    newest = await asyncio.to_thread(tail, stack, tmp_path, "--json", "--count", "2")
    assert newest.returncode == 0, newest.stderr
    assert [(line["stream"], run_of(line)) for line in map(json.loads, newest.stdout.splitlines())] == order[-2:]


async def test_overlapping_subjects_show_each_event_once(stack: StackEndpoints, tmp_path: Path) -> None:
    marker = f"overlap-{uuid.uuid4().hex[:8]}"
    order = await publish_interleaved(stack, marker)
    # Two patterns that overlap without one covering the other, and one that covers another.
    args = ["-s", "*.run.>", "-s", "wf.*.requested", "-s", "dlq.>", "-s", "dlq.wf.>"]
    result = await asyncio.to_thread(
        tail, stack, tmp_path, "--replay", "--json", "--grep", marker, *args, "--timeout", "2"
    )
    assert result.returncode == 0, result.stderr
    assert [(line["stream"], run_of(line)) for line in map(json.loads, result.stdout.splitlines())] == order


def test_a_subject_no_tailed_stream_holds_is_one_line(tmp_path: Path) -> None:
    result = gxwf("events", "tail", "-s", "logs.>", env={"GXWF_NATS_URL": "nats://127.0.0.1:1"}, cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "--subject logs.>: no stream holds it (streams: edc.>, wf.>, dlq.>)" in lines[0]
