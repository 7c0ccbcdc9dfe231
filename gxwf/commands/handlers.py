"""`gxwf handlers run`: the event handlers as durable subscribers, against servers that run elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gxwf.errors import UserError
from gxwf.settings import Settings, load_settings
from handlers.subscriptions import GROUPS

if TYPE_CHECKING:
    from adapters.management_registration import RegisteredManagement
    from schemas.connectors import ConnectorRegistry

handlers_app = typer.Typer(help="The event handlers.", no_args_is_help=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


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
    replicas: Annotated[
        int,
        typer.Option(
            "--replicas",
            help="Run the handlers as this many processes (1-16) sharing the durable consumers; the parent "
            "restarts one that dies and keeps their pids in STATE_DIR/handlers-replicas*.json. With --health-port, "
            "replica i serves on that port + i.",
        ),
    ] = 1,
) -> None:
    """Run handlers as durable subscribers until SIGTERM or Ctrl-C (servers from settings or endpoints.json)."""
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise UserError(f"--only {unknown[0]}: unknown handler group; choose from {', '.join(GROUPS)}")
    check_replicas(replicas)
    if health_port is not None and health_port + replicas - 1 > 65535:
        raise UserError(
            f"--health-port {health_port}: {replicas} replicas need ports up to {health_port + replicas - 1}"
        )
    settings = load_settings(state_dir)
    if replicas > 1:
        asyncio.run(_replicated(settings, only, health_port, replicas, state_dir))
        return
    asyncio.run(_handlers(settings, only, health_port))


def check_replicas(replicas: int) -> None:
    from gxwf.replicas import MAX_REPLICAS

    if not 1 <= replicas <= MAX_REPLICAS:
        raise UserError(f"--replicas {replicas}: choose from 1 to {MAX_REPLICAS} processes")


async def _replicated(
    settings: Settings, only: list[str] | None, health_port: int | None, replicas: int, state_dir: Path | None
) -> None:
    """The parent of `replicas` processes of `gxwf handlers run` (each with --replicas 1)."""
    from devstack.restarts import RestartPolicy
    from gxwf.endpoints import Endpoints
    from gxwf.replicas import ReplicaSet, ReplicasFailed, pids_file, replica_command
    from gxwf.serving import serve_until_signalled

    try:
        Endpoints.resolve(settings, "handlers")  # one clear line here, rather than one per replica
    except LookupError as error:
        raise UserError(str(error)) from None
    args = ["handlers", "run", "--state-dir", str(settings.state_dir)]
    for group in only or ():
        args += ["--only", group]
    replica_set = ReplicaSet(
        replicas,
        replica_command(args),
        pids_path=pids_file(settings.state_dir, only),
        health_port=health_port,
        policy=RestartPolicy(
            limit=settings.replica_restart_limit, window_seconds=settings.replica_restart_window_seconds
        ),
    )
    failed: list[str] = []

    async def start(services: contextlib.AsyncExitStack) -> None:
        services.push_async_callback(replica_set.stop)
        try:
            await replica_set.start()
        except ReplicasFailed as error:
            failed.append(str(error))
            raise
        print(f"handlers ready ({replicas} replicas, pids {', '.join(map(str, replica_set.pids()))})", flush=True)

        async def give_up() -> None:
            failed.append(await replica_set.wait_failed())
            os.kill(os.getpid(), signal.SIGTERM)  # ends serving as a stop signal would, stopping the others

        services.enter_context(_background(give_up()))

    with contextlib.suppress(ReplicasFailed):
        await serve_until_signalled(start)
    if failed:
        # Not bad input: the handlers could not be kept running (exit 1, as a failed stack).
        print(f"gxwf: error: {failed[0]}", file=sys.stderr)
        raise typer.Exit(1)


@contextlib.contextmanager
def _background(work: Coroutine[Any, Any, None]) -> Iterator[None]:
    task = asyncio.ensure_future(work)
    try:
        yield
    finally:
        task.cancel()


async def _handlers(settings: Settings, only: list[str] | None, health_port: int | None) -> None:
    from gxwf.endpoints import Endpoints
    from gxwf.runtime import HandlerService
    from gxwf.serving import serve_until_signalled

    try:
        endpoints = Endpoints.resolve(settings, "handlers")
    except LookupError as error:
        raise UserError(str(error)) from None
    service = HandlerService(
        settings, endpoints, only, connectors=_connectors(settings), management_lookup=_trial_lookup(settings)
    )

    async def start(services: contextlib.AsyncExitStack) -> None:
        if health_port is not None:
            from gxwf.health import health_app, serve
            from http_serving.server import ListenError

            try:
                health = await serve(health_app(service.readiness), settings.health_host, health_port)
            except ListenError:
                raise UserError(
                    f"--health-port {health_port}: cannot listen on {settings.health_host}:{health_port}"
                ) from None
            services.push_async_callback(health.stop)
        # Pushed before its start: its stop also undoes a start that failed halfway.
        services.push_async_callback(service.stop)
        await service.start()
        print("handlers ready", flush=True)

    await serve_until_signalled(start)


def _connectors(settings: Settings) -> ConnectorRegistry | None:
    """The connectors the provisioning handlers answer (the default one with the key `gxwf up` or `gxwf
    edc-ingress` kept when GXWF_EDC_API_KEY is unset); None when none is configured (they then fail each
    provisioning with that reason rather than guess)."""
    from pydantic import SecretStr

    from edc_ingress.settings import ConfigError, connector_registry
    from gxwf.edc_ingress_setup import load_edc_settings, stored_api_key

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
    from gxwf.edc_ingress_setup import load_edc_settings, management_lookup

    return management_lookup(settings, load_edc_settings())
