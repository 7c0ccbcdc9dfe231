from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from schemas.documents import StatefulDocument

D = TypeVar("D", bound=StatefulDocument)


class Outcome(StrEnum):
    APPLIED = "applied"
    # The history already holds this event's transition: a redelivery, nothing changed.
    ALREADY_APPLIED = "already_applied"
    # The state machine does not allow it from the current state: stale or out of order.
    REJECTED = "rejected"
    MISSING = "missing"


@dataclass(frozen=True)
class TransitionResult:
    outcome: Outcome
    state: str | None

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.APPLIED

    @property
    def settled(self) -> bool:
        """Applied now or before: the caller may (re)publish what follows from it."""
        return self.outcome in (Outcome.APPLIED, Outcome.ALREADY_APPLIED)


class StateStore(Protocol):
    async def create(self, doc: StatefulDocument, *, event_id: str) -> bool:
        """Insert in its initial state with a first history entry; False when the id exists already."""
        ...

    async def get(self, kind: type[D], doc_id: str) -> D | None: ...

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        """Compare-and-set: apply `to` only from a state the kind's machine allows, once per event id."""
        ...

    async def set_fields(self, kind: type[StatefulDocument], doc_id: str, fields: Mapping[str, Any]) -> bool:
        """Set fields that are not the state (flags, facts learned on the way); False when the id is unknown."""
        ...

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]: ...

    async def count(self, kind: type[StatefulDocument], *, states: list[str] | None = None, **equals: Any) -> int: ...
