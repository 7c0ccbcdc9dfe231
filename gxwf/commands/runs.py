"""`gxwf runs submit`: an operator's run of a local command, published as wf.run.requested.

The jobs handler runs only what the asset catalogue holds, so the command goes into it first, as an asset of
its own (`adhoc-<hash of the command>`, offered to no connector), and the run names that asset."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from gxwf.errors import UserError
from gxwf.settings import load_settings
from schemas.assets import StoredAsset, WorkflowAssetDefinition


def definition_version(definition: WorkflowAssetDefinition) -> StoredAsset:
    """The definition as the catalogue will hold it (its version is known once applied)."""
    return StoredAsset(asset_id=definition.id, version=1, digest=definition.digest(), definition=definition)


runs_app = typer.Typer(help="Workflow runs (operator commands).", no_args_is_help=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


@runs_app.command("submit")
def runs_submit(
    command: Annotated[list[str], typer.Argument(help="The command to run, after --")],
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer id the run belongs to.")] = "operator",
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id (default: a new one).")] = None,
    timeout_seconds: Annotated[float, typer.Option("--timeout", min=1, help="Running time limit.")] = 3600,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            help="The site whose handlers run it, e.g. hpc beside local under `gxwf up --slurm` (unset: whichever "
            "site's handlers take it first).",
        ),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Put the command into the catalogue as an ad-hoc asset, publish wf.run.requested for it, print the run id."""
    from adapters.mongo_assets import MongoAssetCatalogue
    from adapters.mongo_store import MongoStateStore
    from events import subjects as s
    from events.bus import Bus
    from events.envelope import new_event
    from events.payloads.run import RunRequested, spec_for_asset
    from gxwf.endpoints import Endpoints
    from schemas.assets import TimeLimits, WorkflowAssetDefinition

    settings = load_settings(state_dir)
    try:
        key = hashlib.sha256(json.dumps([command, timeout_seconds]).encode()).hexdigest()[:12]
        definition = WorkflowAssetDefinition(
            id=f"adhoc-{key}",
            title="An operator's command (gxwf runs submit)",
            command=command,
            time_limits=TimeLimits(running_seconds=timeout_seconds),
        )
        request = RunRequested(
            run_id=run_id or f"run-{uuid.uuid4().hex[:12]}",
            consumer_id=consumer,
            asset_id=definition.id,
            site=site,
            spec=spec_for_asset(definition_version(definition), []),
        )
        endpoints = Endpoints.resolve(settings)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except LookupError as error:
        raise UserError(str(error)) from None

    async def main() -> None:
        store = MongoStateStore.connect(endpoints.mongo, settings.mongo_database)
        try:
            catalogue = MongoAssetCatalogue(store.db)
            await catalogue.ensure_indexes()
            stored, _ = await catalogue.apply(definition)
        finally:
            await store.close()
        published = request.model_copy(update={"asset_version": stored.version})
        bus = Bus(endpoints.nats)
        await bus.broker.connect()
        try:
            await bus.publish(
                new_event(s.RUN_REQUESTED, published, subject=request.run_id, correlationid=request.run_id)
            )
        finally:
            await bus.broker.stop()

    asyncio.run(main())
    print(request.run_id)
