from __future__ import annotations

from typing import Protocol


class Leases(Protocol):
    """Time-bound exclusive roles among replicas (the one dispatcher of a site's queue)."""

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew the lease; False while another holder's lease has not expired."""
        ...

    async def held(self, name: str) -> bool:
        """Whether anyone holds the lease now (a download in progress, say)."""
        ...
