"""`gxwf bench ...`: benchmarks that print figures, each on servers of its own."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console

from gxwf.errors import UserError
from gxwf.settings import load_settings

bench_app = typer.Typer(help="Benchmarks that print figures.", no_args_is_help=True)


@bench_app.command("backbone")
def bench_backbone(
    events: Annotated[int, typer.Option("--events", min=10, max=1_000_000, help="Events per measurement.")] = 2000,
    nats_nodes: Annotated[
        int | None,
        typer.Option(
            "--nats-nodes",
            help="Also on an N-node JetStream cluster (streams at min(3, N) replicas), beside a single server.",
            show_default=False,
        ),
    ] = None,
    replicas: Annotated[
        str | None,
        typer.Option(
            "--replicas",
            help="Replica processes sharing the durable consumer, comma-separated (e.g. 1,2,4): throughput and p99 "
            "for each, and how throughput grows with them.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the figures as one JSON object, last.")] = False,
) -> None:
    """Events/s and publish-to-handled latency through the pipeline, beside raw nats-py on the same servers; with
    --nats-nodes or --replicas, the bus path on one server and on a cluster, with replicas sharing the work."""
    if nats_nodes is None and replicas is None:
        from gxwf.bench_backbone import run_benchmark

        settings = load_settings()
        rows = asyncio.run(run_benchmark(settings, events, console=Console()))
        if as_json:
            print(json.dumps({"events": events, "rows": [asdict(row) for row in rows]}))
        return
    from gxwf.bench_backbone_scaling import parse_replicas, run_scaling
    from gxwf.commands.up import MAX_NATS_NODES

    counts = parse_replicas(replicas or "1")
    nodes = 1 if nats_nodes is None else nats_nodes
    if not 1 <= nodes <= MAX_NATS_NODES:
        raise UserError(f"--nats-nodes {nodes}: give 1 to {MAX_NATS_NODES} NATS servers")
    load_settings()  # logging as configured
    asyncio.run(run_scaling(nodes, counts, events, console=Console(), as_json=as_json))


@bench_app.command("ingress")
def bench_ingress(
    requests: Annotated[int, typer.Option("--requests", min=100, max=1_000_000, help="Requests per server.")] = 5000,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024, help="Concurrent clients.")] = 64,
    dps: Annotated[
        bool,
        typer.Option(
            "--dps",
            help="Data Plane Signaling: POST /dataflows/start until its 202 (beside a bare route), then the time "
            "from start to the `started` callback for --transfers transfers on the local site.",
        ),
    ] = False,
    transfers: Annotated[
        int, typer.Option("--transfers", min=1, max=10_000, help="With --dps: transfers started to callback.")
    ] = 200,
    consumers: Annotated[
        int, typer.Option("--consumers", min=1, max=10_000, help="With --dps: consumers those transfers are for.")
    ] = 20,
) -> None:
    """Requests/s and latency of POST /edc/events until JetStream's ack, beside a bare FastAPI route; with --dps,
    of Data Plane Signaling start messages, and start-to-started latency on a whole local system."""
    from gxwf.bench_ingress import run_benchmark as run_ingress_benchmark

    settings = load_settings()
    console = Console()
    asyncio.run(run_ingress_benchmark(settings, requests, concurrency, console=console, dps=dps))
    if dps:
        from gxwf.bench_dps import run_started_latency

        if not asyncio.run(run_started_latency(transfers, min(concurrency, transfers), consumers, console=console)):
            raise typer.Exit(1)


@bench_app.command("runs")
def bench_runs(
    runs: Annotated[
        int | None, typer.Option("--runs", min=1, max=100_000, help="Runs to orchestrate (500; 100 with --site).")
    ] = None,
    consumers: Annotated[int, typer.Option("--consumers", min=1, max=10_000, help="Consumers they belong to.")] = 20,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            help="A Slurm site of the sites file, or `hpc` alone: a local Slurm cluster started for it; the "
            "pipeline beside a bare httpx loop against its slurmrestd.",
        ),
    ] = None,
) -> None:
    """Runs per minute and orchestration latency on the local backend, beside a bare subprocess loop; with --site,
    on a Slurm site, beside a bare loop of REST calls."""
    settings = load_settings()
    if site is None:
        from gxwf.bench_runs import run_benchmark

        asyncio.run(run_benchmark(settings, runs or 500, consumers, console=Console()))
        return
    from gxwf.bench_runs_slurm import run_slurm_benchmark

    asyncio.run(run_slurm_benchmark(settings, runs or 100, consumers, site, console=Console()))


@bench_app.command("dashboard")
def bench_dashboard(
    rate: Annotated[int, typer.Option("--rate", min=1, max=100_000, help="Events published per second.")] = 2000,
    seconds: Annotated[float, typer.Option("--seconds", min=1, max=3600, help="How long to publish.")] = 30,
    clients: Annotated[int, typer.Option("--clients", min=1, max=1000, help="SSE clients tailing at once.")] = 20,
) -> None:
    """Events delivered to every live-tail client, publish-to-client latency, and the dashboard's CPU and RSS."""
    from gxwf.bench_dashboard import run_benchmark as run_dashboard_benchmark

    settings = load_settings()
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
    settings = load_settings()
    asyncio.run(run_benchmark(settings, consumers, backend, console=Console()))


@bench_app.command("data")
def bench_data(
    size: Annotated[str, typer.Option("--size", help="Bytes to move each way (1GiB, 64MiB, 1048576).")] = "1GiB",
    requests: Annotated[int, typer.Option("--requests", min=10, max=1_000_000, help="GET /v1/runs/{id} calls.")] = 2000,
) -> None:
    """Upload and download through the WorkflowApi beside aioboto3 straight to S3: throughput, ratio, API RSS."""
    from gxwf.bench_data import parse_size, run_benchmark

    settings = load_settings()
    asyncio.run(run_benchmark(settings, parse_size(size), requests, console=Console()))


@bench_app.command("store-crash")
def bench_store_crash(
    trials: Annotated[int, typer.Option("--trials", min=1, max=1000, help="SIGKILLs per setting.")] = 5,
    writes: Annotated[
        int, typer.Option("--writes", min=10, max=1_000_000, help="Acknowledged writes at most before each kill.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Chooses the kill points.")] = 1,
    setting: Annotated[
        list[str] | None,
        typer.Option("--setting", help="Durability settings to measure (repeatable); default: all of them."),
    ] = None,
) -> None:
    """Acknowledged writes the embedded MongoDB-wire server loses on SIGKILL, and the write rate, per write concern
    and server flag: writes as the handlers make them, a kill at a random point, a restart on the same data."""
    from gxwf.bench_store_crash import SETTINGS, measure, report

    chosen = setting or list(SETTINGS)
    unknown = [name for name in chosen if name not in SETTINGS]
    if unknown:
        raise UserError(f"--setting {unknown[0]}: choose from {', '.join(SETTINGS)}")
    results = asyncio.run(measure(chosen, trials=trials, writes=writes, seed=seed))
    report(Console(), results, seed=seed)
