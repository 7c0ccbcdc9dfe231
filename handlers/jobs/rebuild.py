"""Re-derive run documents from the run facts on the bus, for a store that lost acknowledged writes.

The facts are in the stream; the run documents are what the handlers made of them. Replaying the facts in
stream order through the handlers' own steps brings every document that is missing or behind forward:
  wf.run.queued    the request was accepted: a missing document is created as the jobs handler creates it
                   (from its wf.run.requested, the spec resolved from the catalogue), announced;
  wf.run.pending   the dispatcher's admission (queued -> pending, under the pending event's id);
  wf.run.<end>     the tracker's transition (running, succeeded, retrying, failed, stopped, timed out).
Every step is the store's conditional transition, once per (event, target), so a document already past a fact
is left alone and a second replay changes nothing. Nothing is published and no backend is called: work the
facts say was started is not started again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from events.envelope import Envelope
from events.payloads.run import RunFact, RunPending, RunQueued, RunRequested
from handlers.context import HandlerContext
from handlers.jobs.submit import queued_run, resolve
from handlers.jobs.track import apply_fact, change_of
from ports.store import Outcome
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.store.rebuild")


@dataclass(frozen=True)
class Placement:
    """Where a run the stream does not place runs: the backend and site of the handlers that would take it."""

    backend: str
    site: str
    # Other sites by name, with their backend, for requests that name one.
    sites: dict[str, str] = field(default_factory=dict)

    def of(self, request: RunRequested, pending: RunPending | None) -> tuple[str, str]:
        if pending is not None:
            return pending.backend, pending.site
        if request.site is not None and request.site != self.site:
            return self.sites.get(request.site, self.backend), request.site
        return self.backend, self.site


@dataclass
class RebuildReport:
    runs: int = 0
    created: int = 0
    announced: int = 0
    transitions: int = 0
    # Accepted runs whose request no longer resolves (its asset or inputs are gone from the store too).
    unresolved: list[str] = field(default_factory=list)
    rejected: int = 0

    def line(self) -> str:
        unresolved = f" ({', '.join(self.unresolved[:5])})" if self.unresolved else ""
        return (
            f"runs={self.runs} created={self.created} announced={self.announced} transitions={self.transitions} "
            f"rejected={self.rejected} unresolved={len(self.unresolved)}{unresolved}"
        )

    @property
    def changed(self) -> bool:
        return bool(self.created or self.announced or self.transitions)


@dataclass
class _Run:
    request: Envelope[RunRequested] | None = None
    queued: bool = False
    pending: RunPending | None = None
    # The facts that transition the document, in stream order: (event id, fact).
    facts: list[tuple[str, RunFact]] = field(default_factory=list)


async def rebuild_runs(
    events: Iterable[Envelope[Any]], ctx: HandlerContext, placement: Placement, *, concurrency: int = 16
) -> RebuildReport:
    """Apply the run facts of `events` (stream order) to the store in `ctx`; what changed.

    `ctx` needs the store, and the catalogue (with `adhoc_runs` as the handlers have it) to resolve a recreated
    run's spec; its event sink is never used."""
    runs: dict[str, _Run] = {}
    for event in events:
        data = event.data
        if isinstance(data, RunRequested):
            run = runs.setdefault(data.run_id, _Run())
            # The first request for an id is the one its document came from (the jobs handler refuses others).
            run.request = run.request or event
        elif isinstance(data, RunQueued):
            runs.setdefault(data.run_id, _Run()).queued = True
        elif isinstance(data, RunFact):
            run = runs.setdefault(data.run_id, _Run())
            if isinstance(data, RunPending) and run.pending is None:
                run.pending = data
            run.facts.append((event.id, data))
    report = RebuildReport()

    async def one(run_id: str, run: _Run) -> None:
        report.runs += 1
        stored = await ctx.store.get(RunDocument, run_id)
        # Its wf.run.queued is out, so the dispatcher may admit it: the flag saying so was lost.
        if (
            stored is not None
            and not stored.announced
            and await ctx.store.set_fields(RunDocument, run_id, {"announced": True})
        ):
            report.announced += 1
        if stored is None:
            if run.request is None:
                report.unresolved.append(run_id)  # its request aged out of the stream
                return
            spec, refused = await resolve(ctx, run.request.data)
            if spec is None:
                log.warning("accepted run not recreated", run_id=run_id, reason=refused)
                report.unresolved.append(run_id)
                return
            backend, site = placement.of(run.request.data, run.pending)
            doc = queued_run(run.request.data, spec, backend=backend, site=site, announced=True)
            if await ctx.store.create(doc, event_id=run.request.id):
                report.created += 1
        # What the document already records needs no round trip: a store that agrees costs one read per run.
        recorded = {(h.event_id, h.to) for h in stored.history} if stored is not None else set()
        for event_id, fact in run.facts:
            change = change_of(fact)
            target = RunState.PENDING if isinstance(fact, RunPending) else change[0] if change else None
            if target is None or (event_id, target) in recorded:
                continue
            if isinstance(fact, RunPending):
                result = await ctx.store.transition(RunDocument, run_id, RunState.PENDING, event_id=event_id)
            else:
                found = await apply_fact(ctx.store, fact, event_id)
                if found is None:
                    continue
                result = found
            if result.outcome is Outcome.APPLIED:
                report.transitions += 1
            elif result.outcome is Outcome.REJECTED:
                report.rejected += 1

    # Only accepted runs (with a wf.run.queued): a request never accepted was refused, or its handler has not
    # answered yet and will create it. Runs are independent documents, so several go at a time: a store that
    # syncs every commit syncs theirs together. A run's own facts stay in stream order.
    accepted = [(run_id, run) for run_id, run in runs.items() if run.queued]
    for start in range(0, len(accepted), concurrency):
        await asyncio.gather(*(one(run_id, run) for run_id, run in accepted[start : start + concurrency]))
    return report
