"""`gxwf runs submit`: an operator's run of a local command, published as wf.run.requested."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from gxwf.errors import UserError
from gxwf.settings import load_settings

runs_app = typer.Typer(help="Workflow runs (operator commands).", no_args_is_help=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


@runs_app.command("submit")
def runs_submit(
    command: Annotated[list[str], typer.Argument(help="The command to run, after --")],
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer id the run belongs to.")] = "operator",
    asset: Annotated[str, typer.Option("--asset", help="Asset id recorded with the run.")] = "adhoc",
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id (default: a new one).")] = None,
    timeout_seconds: Annotated[float, typer.Option("--timeout", min=1, help="Running time limit.")] = 3600,
    state_dir: StateDir = None,
) -> None:
    """Publish wf.run.requested for a local command and print the run id."""
    from events import subjects as s
    from events.bus import Bus
    from events.envelope import new_event
    from events.payloads.run import RunRequested, RunSpec
    from gxwf.endpoints import Endpoints

    settings = load_settings(state_dir)
    try:
        request = RunRequested(
            run_id=run_id or f"run-{uuid.uuid4().hex[:12]}",
            consumer_id=consumer,
            asset_id=asset,
            spec=RunSpec(command=command, timeout_seconds=timeout_seconds),
        )
        endpoints = Endpoints.resolve(settings)
    except ValidationError as error:
        first = error.errors()[0]
        raise UserError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    except LookupError as error:
        raise UserError(str(error)) from None

    async def main() -> None:
        bus = Bus(endpoints.nats)
        await bus.broker.connect()
        try:
            await bus.publish(new_event(s.RUN_REQUESTED, request, subject=request.run_id, correlationid=request.run_id))
        finally:
            await bus.broker.stop()

    asyncio.run(main())
    print(request.run_id)
