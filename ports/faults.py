from __future__ import annotations

from typing import Protocol


class FaultPoints(Protocol):
    """Named points where operators and fault tests can inject a pause or an error (off by default)."""

    async def reach(self, name: str) -> None: ...


class NoFaults:
    async def reach(self, name: str) -> None:
        return None
