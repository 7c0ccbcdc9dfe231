"""`gxwf slurm up`: a local single-node Slurm cluster (Debian's Slurm daemons) in the foreground, to try the HPC
site or to point a sites file at."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer

from gxwf.settings import load_settings

slurm_app = typer.Typer(help="A local Slurm cluster for trying the HPC site.", no_args_is_help=True)


@slurm_app.command("up")
def slurm_up(
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="The cluster goes into a new directory in STATE_DIR/slurm (default .gxwf)."),
    ] = None,
    cpus: Annotated[int, typer.Option("--cpus", min=1, max=1024, help="CPUs the node declares.")] = 16,
    gpus: Annotated[int, typer.Option("--gpus", min=0, max=64, help="GPUs the node declares (no device).")] = 2,
) -> None:
    """Start munge, slurmctld, slurmd and slurmrestd (JWT) on free loopback ports; print how to reach them.

    Runs until Ctrl-C (or SIGTERM), which cancels every job and then stops the daemons. Needs root and Debian's
    packages slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin.
    """
    settings = load_settings(state_dir)
    asyncio.run(_serve(settings.state_dir, cpus, gpus))


async def _serve(state_dir: Path, cpus: int, gpus: int) -> None:
    from gxwf.serving import serve_until_signalled
    from gxwf.slurm_local import describe, keep_token_fresh, start_local_slurm

    async def start(services: contextlib.AsyncExitStack) -> None:
        cluster, note = start_local_slurm(state_dir, cpus=cpus, gpus=gpus)
        services.callback(cluster.stop)
        renewing = asyncio.create_task(keep_token_fresh(cluster))
        services.callback(renewing.cancel)
        if note:
            print(note)
        print(f"slurm is up in {cluster.directory}")
        for what, value in describe(cluster):
            print(f"  {what + ':':<13} {value}")
        print("Ctrl-C stops it (every job is cancelled first).", flush=True)

    await serve_until_signalled(start)
