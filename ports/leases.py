from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

# What a holder takes off its lease's time before it stops acting under it: room for the clock rate of two hosts
# and for the time between this process's last look at its deadline and its write reaching the server.
SAFETY_MARGIN_SECONDS = 2.0


@dataclass(frozen=True)
class Lease:
    """A lease as its holder took it: the epoch grows every time the lease changes holder, so a write made under
    epoch 3 is told from one made under epoch 4 after a takeover.

    `deadline` is this process's own monotonic clock: renewal time + ttl - a safety margin. A process paused past
    it (SIGSTOP, a stalled VM) sees it on resume before it makes any round trip."""

    name: str
    holder: str
    epoch: int
    deadline: float

    @classmethod
    def taken(cls, name: str, holder: str, epoch: int, ttl_seconds: float, asked_at: float) -> Lease:
        """The lease renewed by a request sent at `asked_at` (time.monotonic()): the server's expiry counts from
        no earlier than that."""
        margin = min(SAFETY_MARGIN_SECONDS, ttl_seconds / 4)
        return cls(name, holder, epoch, asked_at + ttl_seconds - margin)

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline


class LeaseLost(Exception):
    """A write made under a lease was refused: its deadline passed here, or the lease names another holder or
    epoch now. The pass that made it ends; the next one finds out whether this process holds the lease again."""

    def __init__(self, lease: Lease, why: str) -> None:
        super().__init__(f"lease {lease.name} (epoch {lease.epoch}) {why}")
        self.lease = lease


class Leases(Protocol):
    """Time-bound exclusive roles among replicas (the one dispatcher of a site's queue)."""

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        """Take or renew the lease; None while another holder's lease has not expired."""
        ...

    async def held(self, name: str) -> bool:
        """Whether anyone holds the lease now (a download in progress, say)."""
        ...

    async def confirm(self, lease: Lease) -> bool:
        """Whether the lease still names this holder with this epoch (its expiry aside)."""
        ...

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up if `holder` has it, so another replica takes it at once (a clean stop)."""
        ...
