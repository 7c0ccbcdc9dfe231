"""When to restart something that died, and when to give up: backoff between attempts, a limit per time window.

Pure bookkeeping (no processes, no clock of its own), so the same policy serves the embedded servers and any
other supervised child (handler replicas), and is tested without either:

    budget = RestartBudget(RestartPolicy())
    delay = budget.next_delay(now)      # None: the limit is reached, give up
    ...restart after `delay` seconds...
    budget.succeeded()                  # once the restarted thing is ready again
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RestartPolicy:
    """`delays`: the wait before the 1st, 2nd, ... restart of a streak (the last repeats); at most `limit`
    restarts within any `window_seconds`, counting restarts that failed as well as those that worked."""

    delays: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
    limit: int = 5
    window_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise ValueError("limit: 0 or more")
        if self.window_seconds <= 0:
            raise ValueError("window_seconds: more than 0")
        if any(delay < 0 for delay in self.delays):
            raise ValueError("delays: 0 or more seconds each")


@dataclass
class RestartBudget:
    """The restarts one supervised thing has used. `next_delay` records an attempt; `succeeded` ends a streak,
    so the next death starts again at the first delay (the window still counts every attempt)."""

    policy: RestartPolicy
    _attempts: deque[float] = field(default_factory=deque)
    _streak: int = 0

    def next_delay(self, now: float) -> float | None:
        """The wait before the next restart attempt, counted as used from `now`; None when the limit is reached."""
        window_start = now - self.policy.window_seconds
        while self._attempts and self._attempts[0] <= window_start:
            self._attempts.popleft()
        if len(self._attempts) >= self.policy.limit:
            return None
        self._attempts.append(now)
        self._streak += 1
        if not self.policy.delays:
            return 0.0
        return self.policy.delays[min(self._streak, len(self.policy.delays)) - 1]

    def succeeded(self) -> None:
        self._streak = 0

    @property
    def attempt(self) -> int:
        """The number of the current streak's latest attempt (1 for the first restart after a death)."""
        return self._streak

    @property
    def used(self) -> int:
        """Attempts inside the window as of the latest `next_delay`."""
        return len(self._attempts)
