"""What a chaos run checks once the system is quiet, from the outside: the store's documents, the streams, the
marker files the runs wrote, the connector's record of callbacks, and the consumers' access.

Every problem is a Finding with its category (lost, doubled, stuck, dead_letter), what it is about, and why, so
the report names each run executed twice and what the stream says happened to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from adapters.local_deployments import consumer_key
from adapters.mongo_store import MongoStateStore
from edc_simulator.ledger import Callback, Transfer
from events.permissions import connect_options
from events.subjects import DLQ_STREAM, RESULT_PUBLISHED, STREAM
from schemas.provisioning import AccessGrantDocument, AccessState, ProvisionDocument, ProvisionState
from schemas.run import RUN_MACHINE, RunDocument

LOST, DOUBLED, STUCK, DEAD_LETTER = "lost", "doubled", "stuck", "dead_letter"
CATEGORIES = (LOST, DOUBLED, STUCK, DEAD_LETTER)


@dataclass(frozen=True)
class Finding:
    category: str
    about: str
    why: str


@dataclass
class Findings:
    items: list[Finding] = field(default_factory=list)
    runs_checked: int = 0
    transfers_checked: int = 0

    def add(self, category: str, about: str, why: str) -> None:
        self.items.append(Finding(category, about, why))

    def count(self, category: str) -> int:
        """Each thing counts once per category, however many of its checks failed."""
        return len({f.about for f in self.items if f.category == category})

    def as_json(self) -> list[dict[str, str]]:
        return [asdict(f) for f in self.items]


@dataclass(frozen=True)
class StreamEvent:
    subject: str
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        data = self.body.get("data")
        return data if isinstance(data, dict) else self.body


async def read_stream(nats_url: str, stream: str, subject: str, timeout: float = 30.0) -> list[StreamEvent]:
    """Every message of `stream` on `subject`, from the first, by an ephemeral consumer that acknowledges nothing."""
    nc = await nats.connect(connect_timeout=5, max_reconnect_attempts=3, **connect_options(nats_url))
    found: list[StreamEvent] = []
    try:
        js = nc.jetstream()
        config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=60.0)
        sub = await js.pull_subscribe(subject, stream=stream, config=config)
        async with asyncio.timeout(timeout):
            while True:
                pending = (await sub.consumer_info()).num_pending
                if not pending:
                    break
                with contextlib.suppress(nats.errors.TimeoutError):
                    for msg in await sub.fetch(min(pending, 512), timeout=2):
                        try:
                            body = json.loads(msg.data)
                        except ValueError:
                            body = {"text": msg.data.decode(errors="replace")}
                        found.append(StreamEvent(msg.subject, body if isinstance(body, dict) else {"value": body}))
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    finally:
        await nc.close()
    return found


class Checker:
    def __init__(self, store: MongoStateStore, nats_url: str, state_dir: Path, markers: Path) -> None:
        self.store = store
        self.nats_url = nats_url
        self.state_dir = state_dir
        self.markers = markers
        self.findings = Findings()

    # -- runs ---------------------------------------------------------------------------------------------------

    async def runs(self, accepted: Iterable[str]) -> None:
        ids = sorted(set(accepted))
        self.findings.runs_checked = len(ids)
        results = Counter(e.data.get("run_id") for e in await read_stream(self.nats_url, STREAM, RESULT_PUBLISHED))
        run_events = await self._run_events()
        terminal = RUN_MACHINE.terminal
        for run_id in ids:
            doc = await self.store.get(RunDocument, run_id)
            lines = self.marker_lines(run_id)
            if doc is None:
                self.findings.add(LOST, run_id, "accepted (202) but unknown to the store")
                continue
            ends = [h.to for h in doc.history if h.to in terminal]
            if doc.state not in terminal:
                self.findings.add(STUCK, run_id, f"still {doc.state} (attempt {doc.attempt})")
            elif len(ends) != 1:
                self.findings.add(DOUBLED, run_id, f"entered {len(ends)} terminal states: {', '.join(ends)}")
            elif doc.state != "succeeded":
                self.findings.add(LOST, run_id, f"ended {doc.state}: {doc.reason or 'no reason recorded'}")
            if len(lines) > 1:
                self.findings.add(DOUBLED, run_id, self._why_twice(doc, lines, run_events.get(run_id, [])))
            elif not lines and doc.state == "succeeded":
                self.findings.add(LOST, run_id, "recorded succeeded, but its command never ran (no marker line)")
            published = results.get(run_id, 0)
            if doc.state in terminal and published == 0:
                self.findings.add(LOST, run_id, f"ended {doc.state}, but no {RESULT_PUBLISHED} on the stream")
            elif published > 1:
                self.findings.add(DOUBLED, run_id, f"{published} {RESULT_PUBLISHED} events on the stream")
        known = set(ids)
        if self.markers.is_dir():
            for marker in sorted(self.markers.iterdir()):
                if marker.name not in known:
                    self.findings.add(
                        DOUBLED,
                        marker.name,
                        "executed, but no submission was answered with this run id "
                        "(a retried submission that became a second run?)",
                    )

    def marker_lines(self, run_id: str) -> list[str]:
        try:
            return [line for line in (self.markers / run_id).read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    async def _run_events(self) -> dict[str, list[str]]:
        by_run: dict[str, list[str]] = defaultdict(list)
        for event in await read_stream(self.nats_url, STREAM, "wf.run.>"):
            run_id = event.data.get("run_id")
            if isinstance(run_id, str):
                by_run[run_id].append(event.subject.removeprefix("wf.run."))
        return by_run

    @staticmethod
    def _why_twice(doc: RunDocument, lines: list[str], events: list[str]) -> str:
        steps = Counter(events)
        repeated = ", ".join(f"{name} x{n}" for name, n in steps.items() if n > 1) or "none repeated"
        return (
            f"executed {len(lines)} times; attempts {doc.attempt}; state history "
            f"{' -> '.join(h.to for h in doc.history)}; run events on the stream: {', '.join(events)} "
            f"(repeated: {repeated})"
        )

    # -- transfers ----------------------------------------------------------------------------------------------

    async def transfers(
        self,
        transfers: list[Transfer],
        callbacks: list[Callback],
        access: dict[str, tuple[str, str]],
        requests: Counter[tuple[str, str]] | None = None,
    ) -> None:
        """Every transfer deprovisioned, with nothing left behind, and called back exactly once each way."""
        self.findings.transfers_checked = len(transfers)
        made = Counter((c.transfer_process_id, c.action) for c in callbacks if c.authorized)
        async with httpx.AsyncClient(timeout=10) as http:
            for transfer in transfers:
                tp = transfer.id
                for action in ("provision", "deprovision"):
                    n = made.get((tp, action), 0)
                    if n == 0:
                        self.findings.add(LOST, tp, f"no {action} callback to the connector")
                    elif n > 1:
                        sent = (requests or Counter()).get((tp, action), 0)
                        why = f"{n} {action} callbacks to the connector ({sent} requests sent)"
                        self.findings.add(DOUBLED, tp, why)
                doc = await self.store.get(ProvisionDocument, tp)
                if doc is None:
                    self.findings.add(LOST, tp, "no provisioning recorded")
                    continue
                if doc.state != ProvisionState.DEPROVISIONED:
                    self.findings.add(STUCK, tp, f"provisioning still {doc.state}")
                grants = await self.store.find(AccessGrantDocument, transfer_process_id=tp)
                active = [g.id for g in grants if g.state == AccessState.ACTIVE]
                if active:
                    self.findings.add(STUCK, tp, f"access grant(s) still active: {', '.join(active)}")
                home = self.state_dir / "consumers" / consumer_key(transfer.agreement.consumer_id)
                deployments = home / "deployments"
                left = sorted(p.name for p in deployments.glob("*.json")) if deployments.is_dir() else []
                if left:
                    self.findings.add(STUCK, tp, f"deployment records left: {', '.join(left)}")
                if tp in access:
                    url, token = access[tp]
                    with contextlib.suppress(httpx.HTTPError):
                        answer = await http.get(
                            f"{url.rstrip('/')}/v1/runs", headers={"Authorization": f"Bearer {token}"}
                        )
                        if answer.status_code < 400:
                            self.findings.add(STUCK, tp, f"the consumer's token still works ({answer.status_code})")

    def leftovers(self) -> None:
        """Nothing of the runs is left on this machine once their consumers were released: no run directory, no
        process of a run (the local backend keeps each attempt's process group in its directory)."""
        runs = self.state_dir / "runs"
        for run_dir in sorted(runs.iterdir()) if runs.is_dir() else []:
            alive = [pgid for pgid in _process_groups(run_dir) if _alive(pgid)]
            why = f"processes still running (groups {', '.join(map(str, alive))})" if alive else "its directory is left"
            self.findings.add(STUCK, f"run directory {run_dir.name}", why)

    # -- dead letters -------------------------------------------------------------------------------------------

    async def dead_letters(self) -> None:
        for index, letter in enumerate(await read_stream(self.nats_url, DLQ_STREAM, "dlq.>"), 1):
            data = letter.data
            error: dict[str, Any] = data["error"] if isinstance(data.get("error"), dict) else {}
            original: dict[str, Any] = data["original"] if isinstance(data.get("original"), dict) else {}
            about = str(original.get("id") or f"#{index}")
            self.findings.add(
                DEAD_LETTER,
                f"{letter.subject} {about}",
                f"{data.get('handler', '?')} after {data.get('delivery_count', '?')} deliveries: "
                f"{error.get('type', '?')}: {error.get('message', '?')}",
            )


def _process_groups(run_dir: Path) -> list[int]:
    groups = []
    for pgid_file in run_dir.glob("attempts/*/pgid"):
        with contextlib.suppress(OSError, ValueError):
            groups.append(int(pgid_file.read_text().strip()))
    return groups


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
