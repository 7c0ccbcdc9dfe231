"""`gxwf store rebuild`: re-derive the run and result documents a store lost from the facts in the event stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gxwf.errors import UserError
from gxwf.settings import load_settings

store_app = typer.Typer(help="The state store.", no_args_is_help=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


@store_app.command("rebuild")
def store_rebuild(state_dir: StateDir = None) -> None:
    """Replay the run and result facts of stream WF into the store: documents missing or behind their facts are
    brought forward with the handlers' own conditional steps. Idempotent; never publishes, never calls a backend."""
    from gxwf.endpoints import known_servers
    from gxwf.store_rebuild import RebuildFailed, rebuild

    settings = load_settings(state_dir)
    try:
        servers = known_servers(settings, ("nats", "mongo"))
    except LookupError as error:
        raise UserError(str(error)) from None
    try:
        report = asyncio.run(rebuild(settings, servers["nats"], servers["mongo"]))
    except RebuildFailed as error:
        raise UserError(f"store rebuild: {error}") from None
    print(f"store rebuild: {report.line()}")
