"""Which queued runs the dispatcher admits: limits per consumer and per site, round-robin, oldest first."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from handlers.context import RunLimits
from handlers.jobs.dispatch import pick_fair
from schemas.run import RunDocument, RunState

T0 = datetime(2026, 11, 25, tzinfo=UTC)


def queued(*owners: str) -> list[RunDocument]:
    return [
        RunDocument(
            id=f"{owner}-{i}",
            state=RunState.QUEUED,
            consumer_id=owner,
            asset_id="a",
            created_at=T0 + timedelta(seconds=i),
        )
        for i, owner in enumerate(owners)
    ]


def test_a_consumer_with_many_runs_does_not_starve_a_later_one() -> None:
    runs = queued("a", "a", "a", "a", "a", "b")
    picked = pick_fair(runs, Counter(), RunLimits(per_consumer=10, per_site=2))
    assert [r.consumer_id for r in picked] == ["a", "b"]


def test_per_consumer_limit_counts_runs_already_active() -> None:
    runs = queued("a", "a", "b")
    picked = pick_fair(runs, Counter({"a": 1}), RunLimits(per_consumer=1, per_site=10))
    assert [r.id for r in picked] == ["b-2"]


def test_the_site_limit_is_never_exceeded_and_older_runs_go_first() -> None:
    runs = queued("a", "b", "c", "a", "b", "c")
    picked = pick_fair(runs, Counter({"z": 3}), RunLimits(per_consumer=5, per_site=5))
    assert [r.id for r in picked] == ["a-0", "b-1"]
    assert pick_fair(runs, Counter({"z": 5}), RunLimits(per_consumer=5, per_site=5)) == []


def test_round_robin_prefers_the_least_busy_consumer() -> None:
    runs = queued("a", "a", "a", "b", "b", "c")
    picked = pick_fair(runs, Counter({"a": 2}), RunLimits(per_consumer=4, per_site=10))
    owners = [r.consumer_id for r in picked]
    # b and c have nothing running: they are served before a's third run, and a never exceeds its limit.
    assert owners[:3] == ["b", "c", "b"]
    assert owners.count("a") == 2
    assert [r.id for r in picked if r.consumer_id == "a"] == ["a-0", "a-1"]
