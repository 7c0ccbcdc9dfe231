"""`gxwf`: start the system, run single components, tail events, generate the AsyncAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from gxwf.asset_commands import assets_app
from gxwf.client_commands import client_app
from gxwf.dashboard_commands import dashboard_command
from gxwf.edc_commands import edc_app, edc_ingress_command
from gxwf.errors import UserError
from gxwf.logging_setup import configure_logging
from gxwf.program import program
from gxwf.settings import Settings
from gxwf.stage_commands import stage_app
from gxwf.workflow_api_commands import workflow_api_command
from handlers.subscriptions import GROUPS

if TYPE_CHECKING:
    from adapters.management_registration import RegisteredManagement
    from devstack import EmbeddedStack
    from schemas.connectors import ConnectorRegistry

app = typer.Typer(
    name="gxwf",
    help="gaiax-workflows: sell compute workflows through an Eclipse Dataspace Connector.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(help="The embedded servers (NATS JetStream, MongoDB-wire, S3).", no_args_is_help=True)
events_app = typer.Typer(help="Events on the bus.", no_args_is_help=True)
handlers_app = typer.Typer(help="The event handlers.", no_args_is_help=True)
runs_app = typer.Typer(help="Workflow runs (operator commands).", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)
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
app.command("dashboard")(dashboard_command)
app.add_typer(stage_app, name="stage")

console = Console(stderr=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


def _settings(state_dir: Path | None = None) -> Settings:
    try:
        # The option goes through validation like the variable (made absolute there).
        settings = Settings() if state_dir is None else Settings(state_dir=state_dir)
    except ValidationError as error:
        first = error.errors()[0]
        name = "GXWF_" + "_".join(str(p) for p in first["loc"]).upper()
        raise UserError(f"{name}: {first['msg']}") from None
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _stack(settings: Settings, *, embedded_state: bool = True) -> EmbeddedStack:
    from devstack import EmbeddedStack

    return EmbeddedStack(
        settings.state_dir if embedded_state else None,
        nats_url=settings.nats_url,
        mongo_url=settings.mongo_url,
        s3_endpoint=settings.s3_endpoint,
        s3_bucket=settings.s3_bucket,
    )


@app.command()
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
    settings = _settings(state_dir)
    program()  # on the shell's PATH, before the change below
    # Local runs start `python3` from the PATH: this installation's interpreter first, so assets written in
    # Python (the carla_standin stand-in) find the project's modules whichever shell started `gxwf up`.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    if not asyncio.run(_up(settings, demo)):
        raise typer.Exit(1)


async def _up(settings: Settings, demo: bool) -> bool:
    """Until signalled; False when the demo failed (everything is stopped by then)."""
    from dashboard.service import DashboardService
    from edc_ingress.service import IngressService
    from edc_simulator.connector import SimulatedConnector
    from edc_simulator.versions import version
    from gxwf.dashboard_commands import build_dashboard, start_dashboard
    from gxwf.demo_story import DemoFailed, DemoSystem, play_demo
    from gxwf.edc_commands import start_for_up
    from gxwf.runtime import Endpoints, HandlerService, prepare_streams, write_endpoints
    from gxwf.shipped_assets import apply_shipped_if_empty
    from gxwf.simulate import simulator_management
    from gxwf.workflow_api_commands import start_for_up as start_workflow_api
    from workflow_api.service import WorkflowApiService

    stack = _stack(settings)
    eps = await stack.start()
    service: HandlerService | None = None
    workflow_api: WorkflowApiService | None = None
    board: DashboardService | None = None
    ingress: IngressService | None = None
    connector: SimulatedConnector | None = None
    try:
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
        board, dashboard_tokens = build_dashboard(
            settings, Endpoints(eps.nats, eps.mongo, eps.s3), nats_monitor=eps.nats_monitor
        )
        endpoints["dashboard"] = await start_dashboard(board)
        console.print(f"[bold]dashboard: {endpoints['dashboard']}[/bold]")
        for name, token in dashboard_tokens.items():
            console.print(f"  {name}={token} (generated; set {name} to choose)")
        management = None
        if demo:
            # The demo's connector serves its management API before the handlers start, so they can ask it.
            connector = SimulatedConnector(version("0.15"), ingress_url="http://127.0.0.1:9", api_key="-")
            await connector.start()
            management = simulator_management(connector)
        ingress, generated_key = await start_for_up(settings, Endpoints(eps.nats, eps.mongo, eps.s3), management)
        endpoints["edc_ingress"] = ingress.url
        workflow_api = await start_workflow_api(settings, Endpoints(eps.nats, eps.mongo, eps.s3))
        endpoints["workflow_api"] = workflow_api.url
        # Consumers deployed on local sites are told where it listens (a free port when 8490 was taken).
        settings = settings.model_copy(update={"workflow_api_url": workflow_api.url})
        service = HandlerService(
            settings,
            Endpoints(eps.nats, eps.mongo, eps.s3),
            connectors=ingress.registry,
            management_lookup=ingress.edc.management_lookup,
        )
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
        await stack.wait_until_signalled()
        return True
    finally:
        if board is not None:
            await board.stop()
        if workflow_api is not None:
            await workflow_api.stop()
        if ingress is not None:
            await ingress.stop()
        if service is not None:
            await service.stop()
        if connector is not None:
            await connector.stop()
        await stack.stop()


@stack_app.command("up")
def stack_up(state_dir: StateDir = None) -> None:
    """Start only the servers; their URLs go to STATE_DIR/endpoints.json."""
    settings = _settings(state_dir)

    async def main() -> None:
        from gxwf.runtime import write_endpoints

        stack = _stack(settings)
        eps = await stack.start()
        try:
            values: dict[str, str | None] = {"nats": eps.nats, "mongo": eps.mongo, "s3": eps.s3}
            write_endpoints(settings.state_dir, values)
            print(json.dumps({**values, "pids": eps.pids}), flush=True)
            await stack.wait_until_signalled()
        finally:
            await stack.stop()

    asyncio.run(main())


@handlers_app.command("run")
def handlers_run(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help=f"Handler group to run (repeatable): {', '.join(GROUPS)}."),
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option("--health-port", min=1, max=65535, help="Serve /healthz, /readyz and /metrics on this port."),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Run handlers as durable subscribers until SIGTERM or Ctrl-C (servers from settings or endpoints.json)."""
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise UserError(f"--only {unknown[0]}: unknown handler group; choose from {', '.join(GROUPS)}")
    settings = _settings(state_dir)
    asyncio.run(_handlers(settings, only, health_port))


async def _handlers(settings: Settings, only: list[str] | None, health_port: int | None) -> None:
    import signal

    from gxwf.runtime import Endpoints, HandlerService

    try:
        endpoints = Endpoints.resolve(settings)
    except LookupError as error:
        raise UserError(str(error)) from None
    service = HandlerService(
        settings, endpoints, only, connectors=_connectors(settings), management_lookup=_trial_lookup(settings)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    health = None
    if health_port is not None:
        from gxwf.health import health_app, serve
        from http_serving.server import ListenError

        try:
            health = await serve(health_app(service.readiness), settings.health_host, health_port)
        except ListenError:
            raise UserError(
                f"--health-port {health_port}: cannot listen on {settings.health_host}:{health_port}"
            ) from None
    await service.start()
    print("handlers ready", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
        if health is not None:
            await health.stop()


def _connectors(settings: Settings) -> ConnectorRegistry | None:
    """The connectors the provisioning handlers answer (the default one with the key `gxwf up` or `gxwf
    edc-ingress` kept when GXWF_EDC_API_KEY is unset); None when none is configured (they then fail each
    provisioning with that reason rather than guess)."""
    from pydantic import SecretStr

    from edc_ingress.settings import ConfigError, connector_registry
    from gxwf.edc_commands import load_edc_settings, stored_api_key

    edc = load_edc_settings()
    kept = stored_api_key(settings.state_dir)
    if edc.edc_api_key is None and edc.edc_connectors_file is None and kept is not None:
        edc = edc.model_copy(update={"edc_api_key": SecretStr(kept)})
    try:
        return connector_registry(edc)
    except ConfigError:
        return None


def _trial_lookup(settings: Settings) -> RegisteredManagement:
    """Where the handlers find a running `gxwf edc simulate` when GXWF_EDC_MANAGEMENT_URL is unset."""
    from gxwf.edc_commands import load_edc_settings, management_lookup

    return management_lookup(settings, load_edc_settings())


@events_app.command("tail")
def events_tail(
    subject: Annotated[
        list[str] | None,
        typer.Option("--subject", "-s", help="Subject filter, NATS wildcards allowed (repeatable)."),
    ] = None,
    consumer: Annotated[str | None, typer.Option("--consumer", help="Only events of this consumer id.")] = None,
    transfer: Annotated[str | None, typer.Option("--transfer", help="Only events of this transfer process id.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only events of this run id.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only events whose JSON contains TEXT (any case).")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start at a stream sequence, an ISO 8601 time, or an age such as 15m."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")] = False,
    replay: Annotated[bool, typer.Option("--replay", help="Start from the oldest stored event.")] = False,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", min=1, help="Print N events and exit: the first N with --replay or --since, else the last N."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="Exit after this many seconds without an event."),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Print events live, or from a sequence or time, filtered like the dashboard's tail (payloads redacted)."""
    from events.filters import EventFilter, FilterError, parse_since
    from gxwf.endpoints import known_servers
    from gxwf.tail import TailError, json_emitter, rich_emitter, tail

    options = {"subject": "--subject", "consumer": "--consumer", "transfer": "--transfer", "run": "--run"}
    options |= {"text": "--grep", "since": "--since"}
    try:
        chosen = EventFilter.build(subject or [], consumer=consumer, transfer=transfer, run=run, text=grep)
        start = parse_since(since)
    except FilterError as error:
        raise UserError(f"{options.get(error.field, error.field)}: {error.message}") from None
    if replay and since:
        raise UserError("--replay and --since: give one (--replay is --since 1)")
    subjects = list(chosen.subjects) or ["edc.>", "wf.>", "dlq.>"]
    settings = _settings(state_dir)
    try:
        nats_url = known_servers(settings, ("nats",))["nats"]
    except LookupError as error:
        raise UserError(str(error)) from None
    emit = json_emitter() if as_json else rich_emitter(Console())
    try:
        asyncio.run(
            tail(
                nats_url,
                subjects,
                replay=replay,
                emit=emit,
                count=count,
                timeout=timeout,
                content=chosen,
                start=start,
            )
        )
    except TailError as error:
        raise UserError(str(error)) from None


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
    from gxwf.runtime import Endpoints

    settings = _settings(state_dir)
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


@app.command()
def asyncapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if OUTPUT differs from the code.")] = False,
) -> None:
    """Generate the AsyncAPI 3.0 document of every subject from the FastStream app."""
    from gxwf.asyncapi_doc import render_yaml

    text = render_yaml()
    if check:
        if output is None:
            raise UserError("--check needs --output FILE to compare with")
        if not output.exists() or output.read_text() != text:
            console.print(f"{output} is out of date: run `gxwf asyncapi -o {output}`")
            raise typer.Exit(1)
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)


@bench_app.command("backbone")
def bench_backbone(
    events: Annotated[int, typer.Option("--events", min=10, max=1_000_000, help="Events per measurement.")] = 2000,
) -> None:
    """Events/s and publish-to-handled latency through the pipeline, beside raw nats-py on the same servers."""
    from gxwf.bench_backbone import run_benchmark

    settings = _settings(None)
    asyncio.run(run_benchmark(settings, events, console=Console()))


@bench_app.command("ingress")
def bench_ingress(
    requests: Annotated[int, typer.Option("--requests", min=100, max=1_000_000, help="Requests per server.")] = 5000,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024, help="Concurrent clients.")] = 64,
) -> None:
    """Requests/s and latency of POST /edc/events until JetStream's ack, beside a bare FastAPI route."""
    from gxwf.bench_ingress import run_benchmark as run_ingress_benchmark

    settings = _settings(None)
    asyncio.run(run_ingress_benchmark(settings, requests, concurrency, console=Console()))


@bench_app.command("runs")
def bench_runs(
    runs: Annotated[int, typer.Option("--runs", min=1, max=100_000, help="Runs to orchestrate.")] = 500,
    consumers: Annotated[int, typer.Option("--consumers", min=1, max=10_000, help="Consumers they belong to.")] = 20,
) -> None:
    """Runs per minute and orchestration latency on the local backend, beside a bare subprocess loop."""
    from gxwf.bench_runs import run_benchmark

    settings = _settings(None)
    asyncio.run(run_benchmark(settings, runs, consumers, console=Console()))


@bench_app.command("dashboard")
def bench_dashboard(
    rate: Annotated[int, typer.Option("--rate", min=1, max=100_000, help="Events published per second.")] = 2000,
    seconds: Annotated[float, typer.Option("--seconds", min=1, max=3600, help="How long to publish.")] = 30,
    clients: Annotated[int, typer.Option("--clients", min=1, max=1000, help="SSE clients tailing at once.")] = 20,
) -> None:
    """Events delivered to every live-tail client, publish-to-client latency, and the dashboard's CPU and RSS."""
    from gxwf.bench_dashboard import run_benchmark as run_dashboard_benchmark

    settings = _settings(None)
    asyncio.run(run_dashboard_benchmark(settings, rate, seconds, clients, console=Console()))


@bench_app.command("provisioning")
def bench_provisioning(
    consumers: Annotated[int, typer.Option("--consumers", min=1, max=10_000, help="Consumers at once.")] = 200,
    backend: Annotated[str, typer.Option("--backend", help="kubernetes (the fake API) or local.")] = "kubernetes",
) -> None:
    """Provision and deprovision N consumers at once: time to access granted, API calls and CPU per consumer."""
    from gxwf.bench_provisioning import run_benchmark

    if backend not in ("kubernetes", "local"):
        raise UserError(f"--backend {backend}: choose kubernetes or local")
    settings = _settings(None)
    asyncio.run(run_benchmark(settings, consumers, backend, console=Console()))


@bench_app.command("data")
def bench_data(
    size: Annotated[str, typer.Option("--size", help="Bytes to move each way (1GiB, 64MiB, 1048576).")] = "1GiB",
    requests: Annotated[int, typer.Option("--requests", min=10, max=1_000_000, help="GET /v1/runs/{id} calls.")] = 2000,
) -> None:
    """Upload and download through the WorkflowApi beside aioboto3 straight to S3: throughput, ratio, API RSS."""
    from gxwf.bench_data import parse_size, run_benchmark

    settings = _settings(None)
    asyncio.run(run_benchmark(settings, parse_size(size), requests, console=Console()))


def main(argv: list[str] | None = None) -> Any:
    """Entry point: usage errors and bad input as one line on stderr with exit status 2, never a traceback."""
    try:
        return app(args=argv, standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("gxwf: aborted", file=sys.stderr)
        sys.exit(130)
    except UserError as error:
        print(f"gxwf: error: {error}", file=sys.stderr)
        sys.exit(2)
    except TyperException as error:
        # Typer's own copy of Click's usage errors: missing or malformed arguments and options.
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        ctx = getattr(error, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        print(f"gxwf: error: {' '.join(message.split())}{hint}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        from devstack import StackError

        if not isinstance(error, StackError):
            raise
        print(f"gxwf: the embedded stack failed: {error}", file=sys.stderr)
        sys.exit(1)
