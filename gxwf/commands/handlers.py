"""`gxwf handlers run`: the event handlers as durable subscribers, against servers that run elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
) -> None:
    """Run handlers as durable subscribers until SIGTERM or Ctrl-C (servers from settings or endpoints.json)."""
    unknown = sorted(set(only or ()) - set(GROUPS))
    if unknown:
        raise UserError(f"--only {unknown[0]}: unknown handler group; choose from {', '.join(GROUPS)}")
    settings = load_settings(state_dir)
    asyncio.run(_handlers(settings, only, health_port))


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
