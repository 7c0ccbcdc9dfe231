"""The restart policy of supervised servers (and replicas): backoff between attempts, a limit per window."""

from __future__ import annotations

import pytest

from devstack.restarts import RestartBudget, RestartPolicy


def test_a_streak_backs_off_then_hits_the_limit() -> None:
    budget = RestartBudget(RestartPolicy(delays=(0.5, 1.0, 2.0, 4.0, 8.0), limit=5, window_seconds=300))
    delays = [budget.next_delay(now) for now in (0.0, 1.0, 3.0, 7.0, 15.0)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert budget.attempt == 5 and budget.used == 5
    # A sixth restart within five minutes: give up.
    assert budget.next_delay(30.0) is None


def test_the_last_delay_repeats() -> None:
    budget = RestartBudget(RestartPolicy(delays=(0.5, 1.0), limit=10, window_seconds=300))
    assert [budget.next_delay(float(now)) for now in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_a_success_restarts_the_backoff_but_the_window_still_counts() -> None:
    budget = RestartBudget(RestartPolicy(delays=(0.5, 1.0, 2.0), limit=3, window_seconds=60))
    assert budget.next_delay(0.0) == 0.5
    assert budget.next_delay(1.0) == 1.0
    budget.succeeded()
    # The next death starts at the first delay again...
    assert budget.next_delay(10.0) == 0.5
    assert budget.attempt == 1 and budget.used == 3
    budget.succeeded()
    # ...but three restarts within the minute are the limit.
    assert budget.next_delay(20.0) is None


def test_restarts_older_than_the_window_are_forgotten() -> None:
    budget = RestartBudget(RestartPolicy(delays=(0.5,), limit=2, window_seconds=60))
    assert budget.next_delay(0.0) == 0.5
    budget.succeeded()
    assert budget.next_delay(30.0) == 0.5
    budget.succeeded()
    assert budget.next_delay(59.0) is None
    # The first restart has left the window: one more is allowed.
    assert budget.next_delay(61.0) == 0.5


def test_a_limit_of_zero_never_restarts() -> None:
    assert RestartBudget(RestartPolicy(limit=0)).next_delay(0.0) is None


@pytest.mark.parametrize(
    ("bad", "field"),
    [({"limit": -1}, "limit"), ({"window_seconds": 0.0}, "window_seconds"), ({"delays": (1.0, -0.5)}, "delays")],
)
def test_a_policy_that_makes_no_sense_is_refused(bad: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RestartPolicy(**bad)  # type: ignore[arg-type]
