"""`gxwf up`: the whole system (servers, handlers, HTTP services, optionally the demo); `gxwf stack up`: the
servers alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gxwf.errors import UserError
from gxwf.program import program
from gxwf.settings import Settings, load_settings

MAX_NATS_NODES = 7  # devstack.stack.MAX_NATS_NODES, kept here so that --help imports no server code

if TYPE_CHECKING:
    from devstack import EmbeddedStack
    from gxwf.endpoints import Component, Endpoints

stack_app = typer.Typer(help="The embedded servers (NATS JetStream, MongoDB-wire, S3).", no_args_is_help=True)
console = Console(stderr=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


NatsNodes = Annotated[
    int | None,
    typer.Option(
        "--nats-nodes",
        help="NATS servers to start, as one JetStream cluster with every stream on min(3, N) of them "
        "(1 to 7; default GXWF_NATS_NODES, else 1). A state directory keeps its first count.",
        show_default=False,
    ),
]


def with_nats_nodes(settings: Settings, nats_nodes: int | None) -> Settings:
    """The settings with --nats-nodes, checked here so a bad count is one line, not a usage box."""
    if nats_nodes is None:
        return settings
    if not 1 <= nats_nodes <= MAX_NATS_NODES:
        raise UserError(f"--nats-nodes {nats_nodes}: give 1 to {MAX_NATS_NODES} NATS servers")
    if settings.nats_url is not None and nats_nodes > 1:
        raise UserError("--nats-nodes: only for the embedded NATS servers, and GXWF_NATS_URL names a server to use")
    return settings.model_copy(update={"nats_nodes": nats_nodes})


ShowSecrets = Annotated[
    bool,
    typer.Option(
        "--show-secrets",
        help="Also print the generated secrets (server credentials, API key, dashboard tokens); "
        "otherwise only the files that keep them (mode 0600) are named.",
    ),
]


def embedded_stack(settings: Settings) -> EmbeddedStack:
    """The servers the settings do not name; configured ones are used as they are. NATS gets a user per component."""
    from devstack import EmbeddedStack
    from gxwf.stack_users import nats_users

    return EmbeddedStack(
        settings.state_dir,
        nats_url=settings.nats_url,
        mongo_url=settings.mongo_url,
        s3_endpoint=settings.s3_endpoint,
        s3_bucket=settings.s3_bucket,
        nats_users=nats_users(),
        nats_nodes=settings.nats_nodes if settings.nats_url is None else 1,
    )


def shown_url(url: str | None) -> str | None:
    """`url` without the password of its `user:password@`, for output; each of a comma-separated list."""
    from urllib.parse import urlsplit, urlunsplit

    if not url:
        return url

    def masked(one: str) -> str:
        parts = urlsplit(one)
        if parts.password is None:
            return one
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))

    return ",".join(masked(one) for one in url.split(","))


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
    edc_version: Annotated[
        str,
        typer.Option(
            "--edc-version",
            help="The demo's simulated connector: 0.5, 0.10, 0.15 (its provisioner requests), 0.18 or main "
            "(Data Plane Signaling to the ingress's /dataflows).",
        ),
    ] = "0.15",
    show_secrets: ShowSecrets = False,
    nats_nodes: NatsNodes = None,
    slurm: Annotated[
        bool,
        typer.Option(
            "--slurm",
            help="Also start a local Slurm cluster (Debian's Slurm packages; root) in STATE_DIR/slurm and add it "
            "as the site `hpc` (16 CPUs, 2 GPUs); with --demo, a GPU run is placed there.",
        ),
    ] = False,
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            help="Run the handlers as this many processes (1-16; `gxwf handlers run --replicas`), their pids in "
            "STATE_DIR/handlers-replicas.json; 1 runs them inside this process.",
        ),
    ] = 1,
) -> None:
    """Start the stack (what is not configured externally), every handler, and the HTTP services."""
    from edc_simulator.versions import version

    try:
        version(edc_version)
    except ValueError as error:
        raise UserError(f"--edc-version {edc_version}: {error}") from None
    if edc_version != "0.15" and not demo:
        raise UserError("--edc-version: only with --demo (it chooses the demo's simulated connector)")
    from gxwf.commands.handlers import check_replicas

    check_replicas(replicas)
    settings = with_nats_nodes(load_settings(state_dir), nats_nodes)
    if slurm:
        from gxwf.slurm_local import check_installed

        check_installed()
    program()  # on the shell's PATH, before the change below
    # Local runs start `python3` from the PATH: this installation's interpreter first, so assets written in
    # Python (the carla_standin stand-in) find the project's modules whichever shell started `gxwf up`.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if not asyncio.run(_up(settings, demo, show_secrets, edc_version, slurm, replicas)):
        raise typer.Exit(1)


async def _up(
    settings: Settings,
    demo: bool,
    show_secrets: bool,
    edc_version: str = "0.15",
    slurm: bool = False,
    replicas: int = 1,
) -> bool:
    """Until signalled; False when the demo failed (everything is stopped by then)."""
    from gxwf.serving import serve_until_signalled

    stack = embedded_stack(settings)

    async def start(services: contextlib.AsyncExitStack) -> bool:
        return await _start_everything(services, stack, settings, demo, show_secrets, edc_version, slurm, replicas)

    return await serve_until_signalled(start, stack=stack)


async def _start_everything(
    services: contextlib.AsyncExitStack,
    stack: EmbeddedStack,
    settings: Settings,
    demo: bool,
    show_secrets: bool,
    edc_version: str = "0.15",
    slurm: bool = False,
    replicas: int = 1,
) -> bool:
    """Each service's stop goes onto `services` as it starts, so a failure midway stops exactly what had
    started, last first. False: the demo failed."""
    from edc_simulator.connector import SimulatedConnector
    from edc_simulator.versions import DPS_VERSIONS, version
    from gxwf.commands.dashboard import ADMIN_TOKEN_FILE, TOKEN_FILE, build_dashboard, start_dashboard
    from gxwf.commands.tenant_gateway import start_for_up as start_tenant_gateway
    from gxwf.commands.workflow_api import start_for_up as start_workflow_api
    from gxwf.demo_story import DemoFailed, play_demo
    from gxwf.demo_system import DemoSystem
    from gxwf.edc_ingress_setup import KEY_FILE, start_for_up
    from gxwf.endpoints import CREDENTIALS_FILE, Endpoints, stack_values, write_endpoints
    from gxwf.replicated_handlers import ReplicatedHandlers, start_replicated
    from gxwf.runtime import HandlerService, prepare_streams
    from gxwf.shipped_assets import apply_shipped_if_empty
    from gxwf.simulate import OAUTH2_SETTINGS, oauth2_environment, simulator_management
    from gxwf.slurm_site import start_hpc_site
    from handlers.subscriptions import GROUPS

    eps = await stack.start()
    services.push_async_callback(stack.stop)
    written: dict[str, Any] = stack_values(eps)
    endpoints: dict[str, str | None] = {"edc_ingress": None, "workflow_api": None, "dashboard": None}

    def servers(component: Component) -> Endpoints:
        """Each component with its own NATS user; S3 keys from the settings for an S3 the stack did not start."""
        return Endpoints.of_stack(eps, component).with_s3(settings)

    state = settings.state_dir
    # Before every component that reads the sites: they read the ones in effect, `hpc` among them.
    cluster = await start_hpc_site(services, settings) if slurm else None
    if cluster is not None:
        settings = settings.model_copy(update={"sites_file": cluster.sites_file})
    # The dashboard first, so an operator can watch everything that follows live.
    await prepare_streams(eps.nats, settings)
    board, dashboard_tokens = build_dashboard(
        settings, servers("dashboard"), nats_monitor=",".join(eps.nats_monitors) or eps.nats_monitor
    )
    endpoints["dashboard"] = await start_dashboard(board)
    services.push_async_callback(board.stop)
    console.print(f"[bold]dashboard: {endpoints['dashboard']}[/bold]")
    token_files = {"GXWF_DASHBOARD_TOKEN": TOKEN_FILE, "GXWF_DASHBOARD_ADMIN_TOKEN": ADMIN_TOKEN_FILE}
    for name, token in dashboard_tokens.items():
        shown = token if show_secrets else f"in {state / token_files[name]}"
        console.print(f"  {name}: {shown} (generated; set {name} to choose)", markup=False)
    connector = None
    management = None
    if demo:
        # The demo's connector serves its management API before the handlers start, so they can ask it.
        # EDC (0.18 and main) authenticates its calls to a data plane only through the registration's OAuth2
        # profile (data-plane-signaling-oauth2), never with a key: the demo's connector of these generations has
        # an issuer, unless the operator configured OAuth2 already.
        oauth2 = edc_version in DPS_VERSIONS and not any(os.environ.get(name) for name in OAUTH2_SETTINGS)
        connector = SimulatedConnector(
            version(edc_version), ingress_url="http://127.0.0.1:9", api_key="-", oauth2=oauth2
        )
        await connector.start()
        services.push_async_callback(connector.stop)
        management = simulator_management(connector)
        if edc_version in DPS_VERSIONS:
            # The data plane calls its control plane back at the signaling URL configured for the connector:
            # for the demo, the simulator's own (unless the operator configured one).
            os.environ.setdefault("GXWF_EDC_SIGNALING_URL", connector.signaling_url)
        if connector.issuer is not None:
            # Its tokens are taken (JWKS, iss, aud, sub) and the callbacks carry the data plane's own.
            os.environ.update(oauth2_environment(connector))
            console.print(f"demo connector's OAuth2 issuer: {connector.issuer.issuer}", markup=False)
    ingress, generated_key = await start_for_up(settings, servers("edc_ingress"), management)
    services.push_async_callback(ingress.stop)
    endpoints["edc_ingress"] = ingress.url
    workflow_api = await start_workflow_api(settings, servers("workflow_api"))
    services.push_async_callback(workflow_api.stop)
    endpoints["workflow_api"] = workflow_api.url
    # Consumers deployed on local sites are told where it listens (a free port when 8490 was taken).
    settings = settings.model_copy(update={"workflow_api_url": workflow_api.url})
    # Those deployed on Kubernetes sites reach their data through a tenant gateway (none without such a site).
    settings, gateway = await start_tenant_gateway(settings, servers("tenant_gateway"))
    if gateway is not None:
        services.push_async_callback(gateway.stop)
        endpoints["tenant_gateway"] = gateway.url
    handlers: HandlerService | ReplicatedHandlers
    if replicas > 1:
        handlers = await start_replicated(
            services, settings, servers("handlers"), {**written, **endpoints}, replicas, management=management
        )
    else:
        handlers = service = HandlerService(
            settings, servers("handlers"), connectors=ingress.registry, management_lookup=ingress.edc.management_lookup
        )
        # Pushed before its start: its stop also undoes a start that failed halfway (streams, loops, clients).
        services.push_async_callback(service.stop)
        await service.start()
    if cluster is not None:
        await cluster.start_handlers(services, settings, servers("handlers"))
    applied = await apply_shipped_if_empty(handlers.assets)
    if cluster is not None:
        written["slurm"] = cluster.endpoints()
    path = write_endpoints(settings.state_dir, {**written, **endpoints})
    table = Table(title="gaiax-workflows is up", show_header=False)
    for key in ("nats", "mongo", "s3"):
        table.add_row(key, written[key] if show_secrets else shown_url(written[key]))
    if len(eps.nats_monitors) > 1:
        table.add_row("nats nodes", nats_nodes_summary(eps, settings))
    for key, value in endpoints.items():
        table.add_row(key, value or "[dim]not in this version[/dim]")
    table.add_row("endpoints file", f"{path} (mode 0600: URLs with credentials, S3 keys, each component's NATS user)")
    if eps.pids:
        table.add_row("credentials", f"generated, in {state / CREDENTIALS_FILE} (mode 0600)")
    if show_secrets and written["s3_credentials"]:
        keys = written["s3_credentials"]
        table.add_row("s3 keys", f"access key {keys['access_key']}, secret key {keys['secret_key']}")
    table.add_row("handlers", ", ".join(GROUPS) + (f" ({replicas} replicas)" if replicas > 1 else ""))
    if generated_key is not None:
        header = ingress.registry.connectors[0].api_key_header
        shown_key = generated_key if show_secrets else f"in {state / KEY_FILE}"
        table.add_row("edc api key", f"{header}: {shown_key} (generated; set GXWF_EDC_API_KEY to choose)")
    if not show_secrets:
        table.add_row("secrets", "--show-secrets prints them")
    table.add_row("assets", applied.summary())
    if cluster is not None:
        table.add_row(f"site {cluster.site} (slurm)", cluster.summary())
    console.print(table)
    if demo and handlers.bus is not None and connector is not None:
        system = DemoSystem(
            # The operator's view: the unrestricted user, like `gxwf events tail`.
            nats_url=eps.nats,
            bus=handlers.bus,
            store=handlers.store,
            assets=handlers.assets,
            ingress_url=str(ingress.url),
            connector=ingress.registry.connectors[0],
            dashboard_url=endpoints["dashboard"],
            state_dir=settings.state_dir,
            site=handlers.site if isinstance(handlers, ReplicatedHandlers) else handlers.compute.site,
        )
        try:
            await play_demo(console, system, connector, gpu_site=cluster.site if cluster is not None else None)
        except DemoFailed as failed:
            console.print(f"[red bold]the demo failed at {failed}[/red bold]")
            console.print(f"stopping everything; the state stays in {settings.state_dir}", markup=False)
            return False
    console.print(f"Running. Ctrl-C stops everything. In another terminal: {program()} events tail", markup=False)
    return True


def nats_nodes_summary(eps: Any, settings: Settings) -> str:
    """The embedded JetStream cluster in one line: its nodes (client and monitoring URL) and the streams' copies."""
    from events.servers import nats_servers, without_credentials
    from events.streams import replicas_for

    nodes = [
        f"nats-{node} {without_credentials(url)} (monitor {monitor})"
        for node, (url, monitor) in enumerate(zip(nats_servers(eps.nats), eps.nats_monitors, strict=True), start=1)
    ]
    replicas = replicas_for(eps.nats, settings.stream_replicas)
    return f"{len(nodes)} in JetStream cluster gxwf, streams at {replicas} replicas: " + ", ".join(nodes)


@stack_app.command("up")
def stack_up(state_dir: StateDir = None, show_secrets: ShowSecrets = False, nats_nodes: NatsNodes = None) -> None:
    """Start only the servers; their URLs and credentials go to STATE_DIR/endpoints.json (mode 0600)."""
    settings = with_nats_nodes(load_settings(state_dir), nats_nodes)

    async def main() -> None:
        from gxwf.endpoints import stack_values, write_endpoints
        from gxwf.runtime import prepare_streams
        from gxwf.serving import serve_until_signalled

        stack = embedded_stack(settings)

        async def start(services: contextlib.AsyncExitStack) -> None:
            eps = await stack.start()
            services.push_async_callback(stack.stop)
            values = stack_values(eps)
            path = write_endpoints(settings.state_dir, values)
            # Here, with the unrestricted user: the components' own users may not create them.
            await prepare_streams(eps.nats, settings)
            if not show_secrets:
                values = {key: shown_url(values[key]) for key in ("nats", "mongo", "s3")} | {"credentials": str(path)}
            nodes = {"nats_nodes": len(eps.nats_monitors)} if eps.nats_monitors else {}
            print(json.dumps({**values, **nodes, "pids": eps.pids}), flush=True)
            if len(eps.nats_monitors) > 1:
                console.print(f"nats nodes: {nats_nodes_summary(eps, settings)}", markup=False)

        await serve_until_signalled(start, stack=stack)

    asyncio.run(main())
