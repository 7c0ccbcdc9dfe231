"""`gxwf up`: the whole system (servers, handlers, HTTP services, optionally the demo); `gxwf stack up`: the
servers alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from gxwf.program import program
from gxwf.settings import Settings, load_settings

if TYPE_CHECKING:
    from devstack import EmbeddedStack

stack_app = typer.Typer(help="The embedded servers (NATS JetStream, MongoDB-wire, S3).", no_args_is_help=True)
console = Console(stderr=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


def embedded_stack(settings: Settings) -> EmbeddedStack:
    """The servers the settings do not name; configured ones are used as they are."""
    from devstack import EmbeddedStack

    return EmbeddedStack(
        settings.state_dir,
        nats_url=settings.nats_url,
        mongo_url=settings.mongo_url,
        s3_endpoint=settings.s3_endpoint,
        s3_bucket=settings.s3_bucket,
    )


def up(
    state_dir: StateDir = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Then play the whole story: a run through the backbone, a simulated connector's transfer "
            "provisioned up to access granted, and the consumer's run with its results downloaded; "
            "exit 1 at the first step that fails.",
        ),
    ] = False,
) -> None:
    """Start the stack (what is not configured externally), every handler, and the HTTP services."""
    settings = load_settings(state_dir)
    program()  # on the shell's PATH, before the change below
    # Local runs start `python3` from the PATH: this installation's interpreter first, so assets written in
    # Python (the carla_standin stand-in) find the project's modules whichever shell started `gxwf up`.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if not asyncio.run(_up(settings, demo)):
        raise typer.Exit(1)


async def _up(settings: Settings, demo: bool) -> bool:
    """Until signalled; False when the demo failed (everything is stopped by then)."""
    from gxwf.serving import serve_until_signalled

    stack = embedded_stack(settings)

    async def start(services: contextlib.AsyncExitStack) -> bool:
        return await _start_everything(services, stack, settings, demo)

    return await serve_until_signalled(start, stack=stack)


async def _start_everything(
    services: contextlib.AsyncExitStack, stack: EmbeddedStack, settings: Settings, demo: bool
) -> bool:
    """Each service's stop goes onto `services` as it starts, so a failure midway stops exactly what had
    started, last first. False: the demo failed."""
    from edc_simulator.connector import SimulatedConnector
    from edc_simulator.versions import version
    from gxwf.commands.dashboard import build_dashboard, start_dashboard
    from gxwf.commands.edc import start_for_up
    from gxwf.commands.tenant_gateway import start_for_up as start_tenant_gateway
    from gxwf.commands.workflow_api import start_for_up as start_workflow_api
    from gxwf.demo_story import DemoFailed, DemoSystem, play_demo
    from gxwf.endpoints import Endpoints, write_endpoints
    from gxwf.runtime import HandlerService, prepare_streams
    from gxwf.shipped_assets import apply_shipped_if_empty
    from gxwf.simulate import simulator_management
    from handlers.subscriptions import GROUPS

    eps = await stack.start()
    services.push_async_callback(stack.stop)
    servers = Endpoints(eps.nats, eps.mongo, eps.s3)
    endpoints: dict[str, str | None] = {
        "nats": eps.nats,
        "mongo": eps.mongo,
        "s3": eps.s3,
        "edc_ingress": None,
        "workflow_api": None,
        "dashboard": None,
    }
    # The dashboard first, so an operator can watch everything that follows live.
    await prepare_streams(eps.nats, settings)
    board, dashboard_tokens = build_dashboard(settings, servers, nats_monitor=eps.nats_monitor)
    endpoints["dashboard"] = await start_dashboard(board)
    services.push_async_callback(board.stop)
    console.print(f"[bold]dashboard: {endpoints['dashboard']}[/bold]")
    for name, token in dashboard_tokens.items():
        console.print(f"  {name}={token} (generated; set {name} to choose)")
    connector = None
    management = None
    if demo:
        # The demo's connector serves its management API before the handlers start, so they can ask it.
        connector = SimulatedConnector(version("0.15"), ingress_url="http://127.0.0.1:9", api_key="-")
        await connector.start()
        services.push_async_callback(connector.stop)
        management = simulator_management(connector)
    ingress, generated_key = await start_for_up(settings, servers, management)
    services.push_async_callback(ingress.stop)
    endpoints["edc_ingress"] = ingress.url
    workflow_api = await start_workflow_api(settings, servers)
    services.push_async_callback(workflow_api.stop)
    endpoints["workflow_api"] = workflow_api.url
    # Consumers deployed on local sites are told where it listens (a free port when 8490 was taken).
    settings = settings.model_copy(update={"workflow_api_url": workflow_api.url})
    # Those deployed on Kubernetes sites reach their data through a tenant gateway (none without such a site).
    settings, gateway = await start_tenant_gateway(settings, servers)
    if gateway is not None:
        services.push_async_callback(gateway.stop)
        endpoints["tenant_gateway"] = gateway.url
    service = HandlerService(
        settings, servers, connectors=ingress.registry, management_lookup=ingress.edc.management_lookup
    )
    # Pushed before its start: its stop also undoes a start that failed halfway (streams, loops, clients).
    services.push_async_callback(service.stop)
    await service.start()
    applied = await apply_shipped_if_empty(service.assets)
    path = write_endpoints(settings.state_dir, endpoints)
    table = Table(title="gaiax-workflows is up", show_header=False)
    for key, value in endpoints.items():
        table.add_row(key, value or "[dim]not in this version[/dim]")
    table.add_row("endpoints file", str(path))
    table.add_row("handlers", ", ".join(GROUPS))
    if generated_key is not None:
        header = ingress.registry.connectors[0].api_key_header
        table.add_row("edc api key", f"{header}: {generated_key} (generated; set GXWF_EDC_API_KEY to choose)")
    table.add_row("assets", applied.summary())
    console.print(table)
    if demo and service.bus is not None and connector is not None:
        system = DemoSystem(
            nats_url=eps.nats,
            bus=service.bus,
            store=service.store,
            assets=service.assets,
            ingress_url=str(ingress.url),
            connector=ingress.registry.connectors[0],
            dashboard_url=endpoints["dashboard"],
            state_dir=settings.state_dir,
        )
        try:
            await play_demo(console, system, connector)
        except DemoFailed as failed:
            console.print(f"[red bold]the demo failed at {failed}[/red bold]")
            console.print(f"stopping everything; the state stays in {settings.state_dir}", markup=False)
            return False
    console.print(f"Running. Ctrl-C stops everything. In another terminal: {program()} events tail", markup=False)
    return True


@stack_app.command("up")
def stack_up(state_dir: StateDir = None) -> None:
    """Start only the servers; their URLs go to STATE_DIR/endpoints.json."""
    settings = load_settings(state_dir)

    async def main() -> None:
        from gxwf.endpoints import write_endpoints
        from gxwf.serving import serve_until_signalled

        stack = embedded_stack(settings)

        async def start(services: contextlib.AsyncExitStack) -> None:
            eps = await stack.start()
            services.push_async_callback(stack.stop)
            values: dict[str, str | None] = {"nats": eps.nats, "mongo": eps.mongo, "s3": eps.s3}
            write_endpoints(settings.state_dir, values)
            print(json.dumps({**values, "pids": eps.pids}), flush=True)

        await serve_until_signalled(start, stack=stack)

    asyncio.run(main())
