"""`gxwf stage in|out`: the stage steps a Kubernetes run pod runs from the gxwf image (see gxwf/stage.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapters.stager import StageError, stage_in
from gxwf.errors import UserError
from gxwf.stage import load_plan, stage_out

stage_app = typer.Typer(help="Inside a Kubernetes run pod: fetch its inputs, upload its outputs.", no_args_is_help=True)
Plan = Annotated[Path, typer.Option("--plan", help="The attempt's stage plan (JSON of presigned URLs).")]


@stage_app.command("in")
def stage_in_command(
    plan: Plan,
    dest: Annotated[Path, typer.Option("--dest", help="Where the inputs go, one entry per input name.")],
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="The workload's working directory, for relative asset paths.")
    ] = None,
) -> None:
    """Fetch every input of the plan, checking sizes and sha256; fails (and so does the pod) on any mismatch."""
    try:
        fetched = stage_in(load_plan(plan), dest, workdir)
    except StageError as error:
        raise UserError(f"stage in: {error}") from None
    typer.echo(f"stage in: {fetched} file(s) in {dest}")


@stage_app.command("out")
def stage_out_command(
    plan: Plan,
    src: Annotated[Path, typer.Option("--src", help="The workload's outputs directory.")],
    now: Annotated[bool, typer.Option("--now", help="Upload at once instead of waiting for SIGTERM.")] = False,
) -> None:
    """Wait until stopped (the workload ended), then upload a tar of the outputs directory to the plan's URL."""
    if not now:
        typer.echo("stage out: waiting for the workload to end")
    try:
        count = stage_out(load_plan(plan), src, wait=not now)
    except StageError as error:
        raise UserError(f"stage out: {error}") from None
    typer.echo(f"stage out: {count} file(s) uploaded")
