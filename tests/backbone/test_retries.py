"""Retries by the run's policy: which failures, how many attempts, each attempt in the timeline."""

from __future__ import annotations

from pathlib import Path

from nats.js import JetStreamContext

from adapters.mongo_store import MongoStateStore
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RetryPolicy, RunRequested, RunSpec
from gxwf.runtime import HandlerService
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually, finished, stream_events


def flaky_script(counter: Path, fail_with: int, succeed_on: int) -> list[str]:
    # Fails with `fail_with` until the `succeed_on`-th attempt; the counter survives between attempts.
    return [
        "/bin/sh",
        "-c",
        f'n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo "try $n";'
        f" [ $n -ge {succeed_on} ] || exit {fail_with}",
    ]


async def submit(service: HandlerService, run_id: str, command: list[str], policy: RetryPolicy) -> None:
    assert service.bus is not None
    spec = RunSpec(command=command, retry=policy)
    await service.bus.publish(
        new_event(s.RUN_REQUESTED, RunRequested(run_id=run_id, consumer_id="c-1", asset_id="shell", spec=spec))
    )


async def test_a_covered_exit_code_is_retried_until_it_succeeds(
    service: HandlerService, store: MongoStateStore, js: JetStreamContext, tmp_path: Path
) -> None:
    policy = RetryPolicy(limit=3, backoff_seconds=0.1, exit_codes=[75])
    await submit(service, "retry-1", flaky_script(tmp_path / "n", 75, 3), policy)
    doc: RunDocument = await eventually(lambda: finished(store, "retry-1"), timeout=30)

    assert doc.state == RunState.SUCCEEDED and doc.attempt == 3
    assert [h.to for h in doc.history] == [
        "queued", "pending", "running", "queued", "pending", "running", "queued", "pending", "running", "succeeded",
    ]  # fmt: skip
    assert doc.history[3].reason == "attempt 1 failed (exit status 75); attempt 2 queued"
    retries = await stream_events(js, s.RUN_RETRYING)
    assert [r["data"]["attempt"] for r in retries] == [2, 3]
    log = service.local_compute.log_path("retry-1").read_text()
    assert "try 1" in log and "=== attempt 3 ===" in log and "try 3" in log


async def test_uncovered_failures_and_exhausted_attempts_fail_the_run(
    service: HandlerService, store: MongoStateStore, tmp_path: Path
) -> None:
    await submit(service, "retry-2", flaky_script(tmp_path / "a", 1, 99), RetryPolicy(limit=3, exit_codes=[75]))
    await submit(service, "retry-3", flaky_script(tmp_path / "b", 75, 99), RetryPolicy(limit=1, backoff_seconds=0.1))
    await submit(
        service,
        "retry-4",
        flaky_script(tmp_path / "c", 75, 99),
        RetryPolicy(limit=1, backoff_seconds=0.1, exit_codes=[75]),
    )
    uncovered = await eventually(lambda: finished(store, "retry-2"), timeout=30)
    not_listed = await eventually(lambda: finished(store, "retry-3"), timeout=30)
    exhausted = await eventually(lambda: finished(store, "retry-4"), timeout=30)

    assert (uncovered.state, uncovered.attempt, uncovered.exit_code) == (RunState.FAILED, 1, 1)
    assert (not_listed.state, not_listed.attempt) == (RunState.FAILED, 1)
    assert (exhausted.state, exhausted.attempt, exhausted.exit_code) == (RunState.FAILED, 2, 75)
    assert (tmp_path / "c").read_text().strip() == "2"
