from __future__ import annotations

from typing import Any, Protocol

from events.envelope import Envelope


class EventSink(Protocol):
    async def publish(self, event: Envelope[Any]) -> None:
        """Durably publish; the event id de-duplicates a retried publish."""
        ...
