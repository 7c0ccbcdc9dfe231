"""Read models of the HTTP entry points: what the WorkflowApi and the dashboard ask the store beyond one document
by id (that is `StateStore.get`). Route modules read only through these, so none of them knows the database: its
collections, query language and indexes stay in the adapter chosen at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from schemas.documents import StatefulDocument
from schemas.inputs import InputDocument
from schemas.provisioning import AccessGrantDocument
from schemas.run import RunDocument

T = TypeVar("T")
# A stored document as the dashboard shows it: the dashboard renders whatever a document holds, across versions.
Row = dict[str, Any]


@dataclass(frozen=True)
class PageKey:
    """Where a page ended, newest first: the last item's creation time and id (ties broken by id)."""

    created_at: datetime
    id: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    # None on the last page.
    next: PageKey | None = None


@dataclass(frozen=True)
class RunFilter:
    state: str | None = None
    asset_id: str | None = None
    # Created at or after (time zone aware).
    since: datetime | None = None


class ConsumerQueries(Protocol):
    """What the WorkflowApi reads for one consumer."""

    async def grant_by_token(self, token_sha256: str) -> AccessGrantDocument | None: ...

    async def runs(
        self, consumer_id: str, filters: RunFilter, *, after: PageKey | None, limit: int
    ) -> Page[RunDocument]: ...

    async def inputs(self, consumer_id: str, *, after: PageKey | None, limit: int) -> Page[InputDocument]: ...


@dataclass(frozen=True)
class TransferRecords:
    """Everything one transfer left in the store, for its timeline."""

    provision: Row
    deployment: Row | None
    grant: Row | None
    # The calls made to its connector, oldest first.
    calls: list[Row]
    # Its runs, oldest first, and the results of those that have one, by run id.
    runs: list[Row]
    results: dict[str, Row] = field(default_factory=dict)
    # Its Data Plane Signaling data flow, when a DPS control plane started it (EDC 0.18 and later).
    dataflow: Row | None = None


@dataclass(frozen=True)
class OverviewRows:
    """Newest first, at most the limit asked for: provisions' consumer and state, runs' consumer, state and site."""

    provisions: list[Row]
    runs: list[Row]


class OpsQueries(Protocol):
    """What the ops dashboard reads from the store."""

    database: str

    async def health(self) -> str:
        """ "ok", or what went wrong (never raises)."""
        ...

    async def recent_transfers(self, limit: int) -> list[Row]:
        """Provisions newest first, without their history and connector target."""
        ...

    async def transfer(self, transfer_id: str, *, max_runs: int, max_calls: int) -> TransferRecords | None:
        """The transfer's records; its runs are those that name it, failing that the consumer's runs created
        while it was provisioned. None for an unknown transfer."""
        ...

    async def overview_rows(self, limit: int) -> OverviewRows: ...

    async def latest_in(self, kind: type[StatefulDocument], states: list[str], limit: int) -> list[Row]:
        """Documents of a kind in one of the states, most recently changed first."""
        ...

    async def result(self, run_id: str) -> Row | None:
        """A run's result document without its history."""
        ...
