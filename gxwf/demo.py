"""The `gxwf up --demo` story: one run through the backbone, its events live, then its stored timeline."""

from __future__ import annotations

import asyncio
import uuid

from rich.console import Console
from rich.table import Table

from events import subjects as s
from events.bus import Bus
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.tail import rich_emitter, tail
from ports.store import StateStore
from schemas.run import RUN_MACHINE, RunDocument

DEMO_COMMAND = [
    "/bin/sh",
    "-c",
    'for step in 1 2 3; do echo "demo step $step of 3"; sleep 1; done; echo done',
]


async def run_demo(console: Console, nats_url: str, bus: Bus, store: StateStore) -> RunDocument | None:
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    request = RunRequested(
        run_id=run_id,
        consumer_id="did:web:demo-consumer",
        asset_id="demo-shell",
        spec=RunSpec(command=DEMO_COMMAND, timeout_seconds=60),
    )
    console.rule(f"[bold]demo: run {run_id}")
    watcher = asyncio.create_task(tail(nats_url, ["wf.run.>"], replay=False, emit=rich_emitter(console), timeout=15.0))
    await asyncio.sleep(0.3)
    await bus.publish(new_event(s.RUN_REQUESTED, request, subject=run_id, correlationid=run_id))
    doc: RunDocument | None = None
    for _ in range(300):
        doc = await store.get(RunDocument, run_id)
        if doc is not None and doc.state in RUN_MACHINE.terminal:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    watcher.cancel()
    if doc is None:
        console.print("[red]the demo run was not recorded: see the handler log above")
        return None
    table = Table(title=f"run {run_id}: {doc.state}")
    for column in ("from", "to", "at", "caused by event"):
        table.add_column(column)
    for entry in doc.history:
        table.add_row(entry.from_ or "-", entry.to, entry.at.isoformat(timespec="milliseconds"), entry.event_id)
    console.print(table)
    return doc
