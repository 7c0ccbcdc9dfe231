"""Fields every stored document shares: natural-key id, state, and its transition history."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

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
    """Every field a document carries is declared: a misspelt or unplanned field is refused when the document is
    built, and the store refuses it in a partial update too (see `check_fields`), so what is stored is what the
    readers (WorkflowApi, dashboard) can rely on."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    collection: ClassVar[str]
    machine: ClassVar[StateMachine]

    id: str = Field(alias="_id")
    state: str
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    history: list[HistoryEntry] = Field(default_factory=list)

    def to_store(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, mode="python")

    @classmethod
    def stored_names(cls) -> frozenset[str]:
        """The keys a stored document of this kind may have: field names, `_id` for the id."""
        return frozenset(info.alias or name for name, info in cls.model_fields.items())

    @classmethod
    def check_fields(cls, fields: Mapping[str, object]) -> None:
        """Refuse a partial update that names a field this kind does not declare."""
        unknown = sorted(set(fields) - cls.stored_names())
        if unknown:
            raise ValueError(f"{cls.__name__} declares no field {', '.join(unknown)}")

    @classmethod
    def from_store(cls, raw: Mapping[str, Any]) -> Self:
        """A stored document; a field written by an earlier version and no longer declared is left behind
        rather than make the document unreadable."""
        names = cls.stored_names()
        return cls.model_validate({key: value for key, value in raw.items() if key in names})
