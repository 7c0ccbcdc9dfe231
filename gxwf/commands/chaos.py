"""`gxwf chaos`: the whole system on loopback under seeded faults, then checked from the outside."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated

import typer

from gxwf.errors import UserError
from gxwf.settings import load_settings


def chaos_command(
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="A new or empty directory for the servers' data, logs, markers, report.")
    ],
    seed: Annotated[int, typer.Option("--seed", help="Seeds the faults: which, when, on what.")] = 1,
    runs: Annotated[int, typer.Option("--runs", min=0, help="Runs submitted through the WorkflowApi.")] = 1000,
    consumers: Annotated[
        int, typer.Option("--consumers", min=1, help="Consumers submitting them (those of the first transfers).")
    ] = 20,
    transfers: Annotated[
        int, typer.Option("--transfers", min=1, help="EDC transfers provisioned and deprovisioned.")
    ] = 50,
    faults: Annotated[
        int | None, typer.Option("--faults", min=0, help="Inject this many faults (default: until the runs are done).")
    ] = None,
    fault_interval: Annotated[
        float, typer.Option("--fault-interval", min=0.5, help="Seconds between faults, on average.")
    ] = 10.0,
    nats_nodes: Annotated[int, typer.Option("--nats-nodes", help="NATS servers, one JetStream cluster above 1.")] = 3,
    replicas: Annotated[int, typer.Option("--replicas", min=1, help="Handler processes.")] = 2,
    timeout: Annotated[
        float, typer.Option("--timeout", min=60, help="Seconds the whole run may take; then it stops and reports.")
    ] = 600.0,
) -> None:
    """Run the system under seeded faults (handler replicas killed and paused, NATS killed, the store and the
    object store restarted) with a workload of EDC transfers and runs, then check that nothing was lost or done
    twice; writes STATE_DIR/chaos.json and prints one line. Exit status 1 when anything was."""
    from devstack.stack import MAX_NATS_NODES
    from gxwf.chaos.processes import ServiceFailed
    from gxwf.chaos.run import ChaosOptions, run_chaos

    if consumers > transfers:
        raise UserError(f"--consumers {consumers}: at most --transfers ({transfers}), a consumer per transfer")
    if not 1 <= nats_nodes <= MAX_NATS_NODES:
        raise UserError(f"--nats-nodes {nats_nodes}: 1 to {MAX_NATS_NODES}")
    if state_dir.exists() and (not state_dir.is_dir() or any(state_dir.iterdir())):
        raise UserError(f"--state-dir {state_dir}: must be new or empty (a chaos run checks all its servers hold)")
    settings = load_settings(state_dir)
    options = ChaosOptions(
        state_dir=state_dir,
        seed=seed,
        runs=runs,
        consumers=consumers,
        transfers=transfers,
        faults=faults,
        fault_interval=fault_interval,
        nats_nodes=nats_nodes,
        replicas=replicas,
        timeout=timeout,
    )
    try:
        report = asyncio.run(run_chaos(options, settings))
    except ServiceFailed as error:
        # Everything it had started is stopped by now; the log named says why.
        print(f"gxwf: chaos: {error}", file=sys.stderr)
        raise typer.Exit(1) from None
    path = report.write(settings.state_dir)
    print(f"report: {path}", file=sys.stderr)
    print(report.line(), flush=True)
    if report.failed:
        raise typer.Exit(1)
