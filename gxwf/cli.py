"""`gxwf`: the Typer app that assembles the command groups of gxwf/commands, and `main`, which turns every
expected failure into one line on stderr and an exit status."""

from __future__ import annotations

import sys
from typing import Any

import typer
from gxwf_client.cli import CommandError
from gxwf_client.cli.commands import client_app
from gxwf_client.cli.errors import usage_line
from typer.exceptions import TyperException

from gxwf.commands.assets import assets_app
from gxwf.commands.asyncapi import asyncapi
from gxwf.commands.bench import bench_app
from gxwf.commands.chaos import chaos_command
from gxwf.commands.dashboard import dashboard_command
from gxwf.commands.edc import edc_app, edc_ingress_command
from gxwf.commands.events import events_app
from gxwf.commands.handlers import handlers_app
from gxwf.commands.runs import runs_app
from gxwf.commands.slurm import slurm_app
from gxwf.commands.stage import stage_app
from gxwf.commands.store import store_app
from gxwf.commands.tenant_gateway import tenant_gateway_command
from gxwf.commands.up import stack_app, up
from gxwf.commands.workflow_api import workflow_api_command
from gxwf.errors import UserError
from gxwf.serving import StoppedWhileStarting

app = typer.Typer(
    name="gxwf",
    help="gaiax-workflows: sell compute workflows through an Eclipse Dataspace Connector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Registration order is the order of `gxwf --help` (commands, then groups): kept as it was.
app.add_typer(stack_app, name="stack")
app.add_typer(events_app, name="events")
app.add_typer(handlers_app, name="handlers")
app.add_typer(runs_app, name="runs")
app.add_typer(bench_app, name="bench")
app.add_typer(edc_app, name="edc")
app.add_typer(assets_app, name="assets")
app.command("edc-ingress")(edc_ingress_command)
app.add_typer(client_app, name="client")
app.command("workflow-api")(workflow_api_command)
app.command("tenant-gateway")(tenant_gateway_command)
app.command("dashboard")(dashboard_command)
app.add_typer(stage_app, name="stage")
app.add_typer(slurm_app, name="slurm")
app.add_typer(store_app, name="store")
app.command()(up)
app.command()(asyncapi)
app.command("chaos")(chaos_command)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: usage errors and bad input as one line on stderr with exit status 2, never a traceback."""
    try:
        return app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("gxwf: aborted", file=sys.stderr)
        sys.exit(130)
    except StoppedWhileStarting as stopped:
        # Everything that had started is stopped by now; the status says which signal, as a shell's would.
        print("gxwf: aborted", file=sys.stderr)
        sys.exit(128 + stopped.signum)
    except (UserError, CommandError) as error:
        print(f"gxwf: error: {error}", file=sys.stderr)
        sys.exit(2)
    except TyperException as error:
        print(f"gxwf: error: {usage_line(error)}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        from devstack import StackError

        if not isinstance(error, StackError):
            raise
        print(f"gxwf: the embedded stack failed: {error}", file=sys.stderr)
        sys.exit(1)
