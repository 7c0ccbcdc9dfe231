"""`gxwf workflow-api` and the WorkflowApi inside `gxwf up`: settings and servers turned into the service."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from gxwf.errors import UserError
from gxwf.settings import Settings, load, load_settings
from http_serving.server import port_free

if TYPE_CHECKING:
    from adapters.servers import Servers
    from gxwf.endpoints import Endpoints
    from workflow_api.service import Gateway, WorkflowApiService
    from workflow_api.settings import WorkflowApiSettings


def listen_address(settings: Settings) -> tuple[str, int]:
    """Host and port of GXWF_WORKFLOW_API_URL (port 0: any free port)."""
    parts = urlsplit(settings.workflow_api_url)
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UserError(f"GXWF_WORKFLOW_API_URL: {settings.workflow_api_url!r} has no valid port") from None
    return host, port


def api_settings() -> WorkflowApiSettings:
    from workflow_api.settings import WorkflowApiSettings

    return load(WorkflowApiSettings)


async def start_for_up(settings: Settings, endpoints: Endpoints) -> WorkflowApiService:
    """The WorkflowApi inside `gxwf up`, on GXWF_WORKFLOW_API_URL's host and port; when that URL is the default
    and its port is taken (a second `up` on one machine), any free port: endpoints.json says which."""
    from workflow_api.service import ServiceError, WorkflowApiService

    host, port = listen_address(settings)
    if "workflow_api_url" not in settings.model_fields_set and not port_free(host, port):
        port = 0
    service = WorkflowApiService(
        endpoints.servers(settings), settings.state_dir, host=host, port=port, settings=api_settings()
    )
    try:
        await service.start()
    except ServiceError as error:
        # Its store and object store clients were opened before the port was refused.
        await service.stop()
        raise UserError(str(error)) from None
    return service


def workflow_api_command(
    host: Annotated[
        str | None, typer.Option("--host", help="Listen address (default: GXWF_WORKFLOW_API_URL's).")
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Listen port (default: GXWF_WORKFLOW_API_URL's, 8490; 0: free)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where endpoints.json and run directories are (default .gxwf).")
    ] = None,
) -> None:
    """Serve the WorkflowApi alone (servers from settings or endpoints.json) until SIGTERM or Ctrl-C."""
    settings = load_settings(state_dir)
    asyncio.run(_serve(settings, host, port))


def gateway_of(configured: WorkflowApiSettings) -> Gateway | None:
    """The tenant gateway a per-consumer deployment reaches its data through, when it is configured so."""
    from workflow_api.service import Gateway

    if configured.workflow_api_gateway_url is None:
        return None
    token = configured.workflow_api_gateway_token
    if token is None or not token.get_secret_value():
        raise UserError("GXWF_WORKFLOW_API_GATEWAY_TOKEN: required with GXWF_WORKFLOW_API_GATEWAY_URL")
    return Gateway(configured.workflow_api_gateway_url, token.get_secret_value())


async def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    from gxwf.endpoints import Endpoints
    from gxwf.runtime import prepare_streams
    from gxwf.serving import serve_until_signalled
    from workflow_api.service import ServiceError, WorkflowApiService

    configured = api_settings()
    target: Servers | Gateway | None = gateway_of(configured)
    endpoints: Endpoints | None = None
    if target is None:
        try:
            endpoints = Endpoints.resolve(settings, "workflow_api")
        except LookupError as error:
            raise UserError(str(error)) from None
        target = endpoints.servers(settings)
    default_host, default_port = listen_address(settings)
    service = WorkflowApiService(
        target,
        settings.state_dir,
        host=host or default_host,
        port=default_port if port is None else port,
        settings=configured,
    )

    async def start(services: contextlib.AsyncExitStack) -> None:
        if endpoints is not None:
            await prepare_streams(endpoints.nats, settings)
        # Pushed first: its stop also closes what a start refused midway (the port taken) had opened.
        services.push_async_callback(service.stop)
        try:
            url = await service.start()
        except ServiceError as error:
            raise UserError(str(error)) from None
        print(f"workflow api listening on {url}", flush=True)

    await serve_until_signalled(start)
