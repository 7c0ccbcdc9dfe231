"""Consumers, sites (capacity, runs per state) and recent failures with their reason, from the store."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ports.queries import OpsQueries
from schemas.documents import StatefulDocument
from schemas.provisioning import DeploymentDocument, ProvisionDocument, ResultDocument
from schemas.run import RunDocument
from schemas.sites import Site

Doc = dict[str, Any]
RUN_STATES = ("queued", "pending", "running", "succeeded", "failed", "stopped", "timed_out")
# The overview counts at most this many documents of a kind; a bigger fleet sees "10000+" rather than a slow page.
SCAN_LIMIT = 10_000


@dataclass
class ConsumerRow:
    consumer_id: str
    transfers: int = 0
    active: int = 0
    runs: Counter[str] = field(default_factory=Counter)


@dataclass
class SiteRow:
    site: Site | None
    name: str
    runs: Counter[str] = field(default_factory=Counter)


@dataclass
class Failure:
    kind: str
    id: str
    at: datetime | None
    reason: str
    link: str | None = None


@dataclass
class Overview:
    consumers: list[ConsumerRow]
    sites: list[SiteRow]
    failures: list[Failure]
    truncated: bool = False


async def overview(queries: OpsQueries, sites: Sequence[Site], failures: int = 20) -> Overview:
    rows = await queries.overview_rows(SCAN_LIMIT)
    provisions, runs = rows.provisions, rows.runs
    consumers: dict[str, ConsumerRow] = {}
    for doc in provisions:
        row = consumers.setdefault(
            str(doc.get("consumer_id") or "(unknown)"), ConsumerRow(str(doc.get("consumer_id") or "(unknown)"))
        )
        row.transfers += 1
        row.active += doc.get("state") == "granted"
    by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for doc in runs:
        consumer = str(doc.get("consumer_id") or "(unknown)")
        consumers.setdefault(consumer, ConsumerRow(consumer)).runs[str(doc.get("state"))] += 1
        by_site[str(doc.get("site") or "(not placed)")][str(doc.get("state"))] += 1
    site_rows = [SiteRow(site, site.name, by_site.pop(site.name, Counter())) for site in sites]
    site_rows += [SiteRow(None, name, counts) for name, counts in sorted(by_site.items())]
    return Overview(
        sorted(consumers.values(), key=lambda r: r.consumer_id),
        site_rows,
        await recent_failures(queries, failures),
        truncated=len(provisions) >= SCAN_LIMIT or len(runs) >= SCAN_LIMIT,
    )


async def recent_failures(queries: OpsQueries, limit: int) -> list[Failure]:
    found: list[Failure] = []
    sources: tuple[tuple[str, type[StatefulDocument], list[str], Callable[[Doc], str]], ...] = (
        (
            "provision",
            ProvisionDocument,
            ["failed"],
            lambda d: f"{d.get('failed_step') or '?'}: {d.get('reason') or ''}",
        ),
        ("deployment", DeploymentDocument, ["failed"], lambda d: str(d.get("reason") or "")),
        ("run", RunDocument, ["failed", "timed_out"], _run_reason),
        ("result", ResultDocument, ["failed"], _last_reason),
    )
    for kind, document, states, reason in sources:
        for doc in await queries.latest_in(document, states, limit):
            found.append(Failure(kind, str(doc["_id"]), doc.get("updated_at"), reason(doc), _link(kind, doc)))
    found.sort(key=lambda f: f.at or datetime.min.replace(tzinfo=None), reverse=True)
    return found[:limit]


def _run_reason(doc: Doc) -> str:
    code = doc.get("exit_code")
    return f"{doc.get('state')}: " + (doc.get("reason") or "") + (f" (exit code {code})" if code is not None else "")


def _last_reason(doc: Doc) -> str:
    for entry in reversed(doc.get("history") or []):
        if entry.get("reason"):
            return str(entry["reason"])
    return ""


def _link(kind: str, doc: Doc) -> str | None:
    if kind == "provision":
        return f"/transfers/{doc['_id']}"
    if kind == "deployment" and doc.get("transfer_process_id"):
        return f"/transfers/{doc['transfer_process_id']}"
    if kind in ("run", "result"):
        return f"/runs/{doc['_id']}/log"
    return None
