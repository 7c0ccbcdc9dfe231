"""Which queued runs the dispatcher admits: limits per consumer and per site, round-robin, oldest first."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from handlers.context import RunLimits
from handlers.jobs.dispatch import Needs, never_fits, pick_fair
from schemas.run import RunDocument, RunState
from schemas.sites import ConsumerQuota

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


def sized(owner: str, i: int, *, cpu: float = 0, memory_mb: int = 0, gpu: int = 0) -> RunDocument:
    spec: dict[str, object] = {
        "command": ["true"],
        "cpu": cpu or None,
        "memory_mb": memory_mb or None,
        "gpu_count": gpu,
    }
    return RunDocument(
        id=f"{owner}-{i}",
        state=RunState.QUEUED,
        consumer_id=owner,
        asset_id="a",
        created_at=T0 + timedelta(seconds=i),
        spec=spec,
    )


def test_a_consumer_at_its_cpu_quota_waits_while_others_go_ahead() -> None:
    quota = ConsumerQuota(cpu=4)
    runs = [sized("a", 0, cpu=2), sized("a", 1, cpu=2), sized("b", 2, cpu=1)]
    limits = RunLimits(per_consumer=10, per_site=10, quota=quota)
    # "a" holds 2 cpu already: one more 2-cpu run fits, the next would make 6 > 4.
    picked = pick_fair(runs, Counter({"a": 1}), limits, {"a": Needs(cpu=2)})
    assert [r.id for r in picked] == ["b-2", "a-0"]


def test_a_consumers_younger_runs_wait_behind_its_oldest_one() -> None:
    quota = ConsumerQuota(memory="4Gi")
    runs = [sized("a", 0, memory_mb=3072), sized("a", 1, memory_mb=512)]
    limits = RunLimits(per_consumer=10, per_site=10, quota=quota)
    # The small run would fit beside what "a" holds, but it asked after the big one.
    assert pick_fair(runs, Counter({"a": 1}), limits, {"a": Needs(memory=2 * 2**30)}) == []


def test_the_quotas_run_count_is_tighter_than_the_global_limit() -> None:
    runs = queued("a", "a", "a")
    picked = pick_fair(runs, Counter(), RunLimits(per_consumer=4, per_site=10, quota=ConsumerQuota(runs=2)))
    assert [r.id for r in picked] == ["a-0", "a-1"]


def test_a_run_bigger_than_the_whole_quota_can_never_fit() -> None:
    quota = ConsumerQuota(cpu=4, memory="8Gi", gpu=1)
    assert never_fits(sized("a", 0, cpu=8, memory_mb=16384, gpu=2), quota) == [
        "8 cpu > 4",
        "memory 16384Mi > 8Gi",
        "2 gpu > 1",
    ]
    assert never_fits(sized("a", 0, cpu=4, memory_mb=8192, gpu=1), quota) == []
    # Without a quota nothing is too big for it (the site's own capacity is placement's business).
    assert never_fits(sized("a", 0, cpu=512), ConsumerQuota()) == []
