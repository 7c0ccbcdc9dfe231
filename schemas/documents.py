"""Fields every stored document shares: natural-key id, state, and its transition history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.state_machine import StateMachine


def utcnow() -> datetime:
    return datetime.now(UTC)


class HistoryEntry(BaseModel):
    """One applied transition; the causing event id makes a redelivered event recognisable."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    from_: str | None = Field(alias="from")
    to: str
    at: datetime
    event_id: str
    reason: str | None = None


class StatefulDocument(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")

    collection: ClassVar[str]
    machine: ClassVar[StateMachine]

    id: str = Field(alias="_id")
    state: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    history: list[HistoryEntry] = Field(default_factory=list)

    def to_store(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="python")
