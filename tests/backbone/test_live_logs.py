"""Live logs through the log stream: chunks arrive while the run runs, in order, each once, and together are
exactly the run's output, on the local backend (also across a handler restart and a retried attempt) and on
Kubernetes (the fake API's followed pod logs)."""

from __future__ import annotations

import contextlib
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from adapters.jetstream_logs import JetStreamLogReader, JetStreamLogSink
from adapters.kubernetes_compute import manifests as m
from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RetryPolicy, RunRequested, RunSpec
from fakekube import FakeKubeServer, Scenario
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from schemas.names import attempt_separator
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished
from tests.backbone.kube import kube_service

FAST = {"log_ship_interval_seconds": 0.1}


async def chunks(js: JetStreamContext, run_id: str) -> list[tuple[int, int, bytes, float]]:
    """(attempt, offset, data, stored at) of every chunk of the run's live log, in stream order."""
    sub = await js.subscribe(
        s.log_subject(run_id), ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
    )
    found: list[tuple[int, int, bytes, float]] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            headers = msg.headers or {}
            stored = msg.metadata.timestamp.timestamp()
            found.append((int(headers["Gxwf-Attempt"]), int(headers["Gxwf-Offset"]), msg.data, stored))
    finally:
        await sub.unsubscribe()
    return found


def joined(found: list[tuple[int, int, bytes, float]], attempt: int) -> bytes:
    """The attempt's chunks put together, checking they follow each other with no gap and no overlap."""
    data = b""
    for number, offset, chunk, _ in found:
        if number == attempt:
            assert offset == len(data), f"chunk at {offset} after {len(data)} bytes: a gap or a repeat"
            data += chunk
    return data


async def started(service: HandlerService, run_id: str, command: str, **spec: Any) -> None:
    assert service.bus is not None
    request = RunRequested(
        run_id=run_id, consumer_id="c-logs", asset_id="shell", spec=RunSpec(command=["/bin/sh", "-c", command], **spec)
    )
    await service.bus.publish(new_event(s.RUN_REQUESTED, request))


async def test_a_runs_output_arrives_while_it_runs_in_order_and_whole(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> None:
    service = HandlerService(settings.model_copy(update=FAST), endpoints, groups=["jobs"])
    await service.start()
    try:
        await started(service, "live-1", 'for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.3; done')
        doc: RunDocument = await eventually(lambda: finished(store, "live-1"))
    finally:
        await service.stop()
    assert doc.state == RunState.SUCCEEDED
    found = await chunks(js, "live-1")
    assert joined(found, 1) == service.local_compute.log_path("live-1").read_bytes()
    assert joined(found, 1) == b"".join(b"line %d\n" % i for i in range(1, 7))
    ended = next(h.at for h in doc.history if h.to == "succeeded").timestamp()
    assert found[0][3] < ended - 0.5, "the first lines were there well before the run ended"


async def test_a_restarted_shipper_goes_on_where_the_stream_ends_and_a_retry_has_its_own_log(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, tmp_path: Any
) -> None:
    marker = tmp_path / "tried"
    # Attempt 1 prints, then fails with a status the retry policy covers; attempt 2 prints more.
    script = (
        f'if [ ! -e {marker} ]; then touch {marker}; for i in 1 2 3; do echo "first $i"; sleep 0.3; done; exit 3; fi; '
        'for i in 1 2 3 4 5 6 7 8; do echo "second $i"; sleep 0.25; done'
    )
    retry = RetryPolicy(limit=1, backoff_seconds=0.1, exit_codes=[3])
    first = HandlerService(settings.model_copy(update=FAST), endpoints, groups=["jobs"])
    await first.start()
    try:
        await started(first, "live-2", script, retry=retry)

        async def second_attempt_logging() -> bool:
            return any(a == 2 for a, *_ in await chunks(js, "live-2"))

        await eventually(second_attempt_logging, timeout=30)
    finally:
        # The handlers go down mid-run (the workload outlives them) and come back.
        await first.stop()
    again = HandlerService(settings.model_copy(update=FAST), endpoints, groups=["jobs"])
    await again.start()
    try:
        doc: RunDocument = await eventually(lambda: finished(store, "live-2"), timeout=30)
    finally:
        await again.stop()
    assert (doc.state, doc.attempt) == (RunState.SUCCEEDED, 2)
    found = await chunks(js, "live-2")
    assert joined(found, 1) == b"first 1\nfirst 2\nfirst 3\n"
    assert joined(found, 2) == b"".join(b"second %d\n" % i for i in range(1, 9))


async def test_a_kubernetes_runs_pod_log_is_followed_into_the_stream(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore, kube: FakeKubeServer
) -> None:
    lines = "".join(f"frame {i}\n" for i in range(1, 9))
    service = await kube_service(settings, endpoints, kube, ["jobs"], **FAST)
    try:
        assert kube.controller is not None and service.bus is not None
        kube.controller.plan(Scenario("succeed", duration=2.0, log=lines), labels={m.RUN_LABEL: m.run_label("live-k")})
        spec = RunSpec(image="busybox:1.36", command=["sh", "-c", "render"])
        await service.bus.publish(
            new_event(s.RUN_REQUESTED, RunRequested(run_id="live-k", consumer_id="c-logs", asset_id="a", spec=spec))
        )
        doc: RunDocument = await eventually(lambda: finished(store, "live-k"))
    finally:
        await service.stop()
    assert doc.state == RunState.SUCCEEDED
    found = await chunks(js, "live-k")
    assert joined(found, 1) == lines.encode()
    assert len(found) > 1, "followed as it was written, not read once at the end"


async def test_the_log_reader_joins_attempts_as_the_archive_does_and_resumes_at_any_byte(js: JetStreamContext) -> None:
    """What the WorkflowApi and the dashboard both read the stream with: offsets count the separators too."""
    sink, reader = JetStreamLogSink(js), JetStreamLogReader(js)
    await sink.append("read-1", 1, 0, b"one\ntwo\n")
    await sink.append("read-1", 1, 8, b"three\n")
    await sink.append("read-1", 1, 8, b"three\n")  # shipped again after a restart: stored once
    await sink.append("read-1", 2, 0, b"again\n")
    whole = b"one\ntwo\nthree\n" + attempt_separator(2).encode() + b"again\n"
    assert b"".join([c async for c in reader.read("read-1")]) == whole
    for offset in (0, 5, 14, 16, len(whole) - 1, len(whole), len(whole) + 10):
        assert b"".join([c async for c in reader.read("read-1", offset=offset)]) == whole[offset:], offset
    assert [c async for c in reader.read("never-ran")] == []

    followed: list[bytes | None] = []
    async with contextlib.aclosing(reader.follow("read-1", offset=4, idle_seconds=0.1)) as live:
        async for chunk in live:
            followed.append(chunk)
            if chunk is None and len([c for c in followed if c is None]) == 1:
                await sink.append("read-1", 2, 6, b"late\n")
            elif chunk is None:
                break
    assert followed[-1] is None and b"".join(c for c in followed if c is not None) == whole[4:] + b"late\n"
