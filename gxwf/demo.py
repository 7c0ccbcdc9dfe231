"""The `gxwf up --demo` story: one run through the backbone, its events live, then its stored timeline; then a
simulated connector's transfer provisioned up to access granted."""

from __future__ import annotations

import asyncio
import uuid

from rich.console import Console
from rich.table import Table

from events import subjects as s
from events.bus import Bus
from events.envelope import new_event
from events.payloads.run import RunRequested, spec_for_asset
from gxwf.tail import rich_emitter, tail
from ports.assets import AssetCatalogue
from ports.store import StateStore
from schemas.assets import FileInput, Output, Resources, TimeLimits, WorkflowAssetDefinition
from schemas.provisioning import ProvisionDocument
from schemas.run import RUN_MACHINE, RunDocument

DEMO_COMMAND = [
    "/bin/sh",
    "-c",
    'for step in 1 2 3; do echo "demo step $step of 3"; sleep 1; done; echo done',
]


# The first step's run: the jobs handler runs only what the catalogue holds, so it is an asset too.
STEPS_ASSET = WorkflowAssetDefinition(
    id="demo-steps",
    title="Demo: three steps",
    description="The demo's first run, straight through the backbone.",
    command=DEMO_COMMAND,
    resources=Resources(cpu=0.5, memory="256Mi"),
    time_limits=TimeLimits(running_seconds=60),
)


async def run_demo(
    console: Console, nats_url: str, bus: Bus, store: StateStore, assets: AssetCatalogue, site: str | None = None
) -> RunDocument | None:
    """The first step's run, on `site` (named where there are several: each site's handlers take a run that
    names none)."""
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    stored, _ = await assets.apply(STEPS_ASSET)
    request = RunRequested(
        run_id=run_id,
        consumer_id="did:web:demo-consumer",
        asset_id=stored.asset_id,
        asset_version=stored.version,
        site=site,
        spec=spec_for_asset(stored, []),
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


DEMO_ASSET = WorkflowAssetDefinition(
    id="demo-shell",
    title="Demo: count lines",
    description="The demo's CPU workflow; fits this machine's local site.",
    edc_asset_ids=["demo-shell"],
    command=["/bin/sh", "-c", "mkdir -p outputs && wc -l < inputs/text > outputs/count.txt"],
    inputs=[FileInput(kind="file", name="text", path="inputs/text")],
    outputs=[Output(name="count", path="outputs/count.txt")],
    resources=Resources(cpu=0.5, memory="256Mi"),
)


async def show_provisioning(console: Console, store: StateStore, transfer_process_id: str) -> ProvisionDocument | None:
    """The transfer's provisioning timeline, and what GET /access answers for it."""
    from edc_ingress.access import access_info
    from edc_ingress.problems import Problem

    doc = await store.get(ProvisionDocument, transfer_process_id)
    if doc is None:
        console.print(f"[red]no provisioning recorded for transfer {transfer_process_id}")
        return None
    table = Table(title=f"transfer {transfer_process_id}: {doc.state}")
    for column in ("from", "to", "at", "reason"):
        table.add_column(column)
    for entry in doc.history:
        table.add_row(entry.from_ or "-", entry.to, entry.at.isoformat(timespec="milliseconds"), entry.reason or "")
    console.print(table)
    try:
        info = await access_info(store, transfer_process_id, doc.connector)
        console.print(f"GET /access/{transfer_process_id}: {info}")
    except Problem as problem:
        console.print(f"[yellow]GET /access/{transfer_process_id}: {problem.status} {problem.detail}")
    return doc
