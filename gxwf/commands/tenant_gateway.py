"""`gxwf tenant-gateway`: what per-consumer WorkflowApis on Kubernetes sites read, write and publish, for their
one consumer each; it holds the installation's server credentials so that they hold none."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gxwf.errors import UserError
from gxwf.settings import Settings, load, load_settings

if TYPE_CHECKING:
    from gxwf.endpoints import Endpoints
    from tenant_gateway.service import TenantGatewayService

KEY_FILE = "gateway-key"


def generated_gateway_key(state_dir: Path) -> str:
    """The key `gxwf up` mints tenant gateway tokens with when GXWF_GATEWAY_KEY is unset: kept in the state
    directory (mode 0600), so the tokens of WorkflowApis deployed before a restart stay valid."""
    path = state_dir / KEY_FILE
    if path.exists() and (existing := path.read_text().strip()):
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


async def start_for_up(settings: Settings, endpoints: Endpoints) -> tuple[Settings, TenantGatewayService | None]:
    """Inside `gxwf up`, when a site deploys per-consumer WorkflowApis on Kubernetes: a tenant gateway on a free
    loopback port, and settings that tell the deployment handlers its URL (unless GXWF_TENANT_GATEWAY_URL names
    another, reachable from the cluster) and the key (GXWF_GATEWAY_KEY, else one kept in the state directory)."""
    from pydantic import SecretStr

    from gxwf.definitions import load_sites
    from tenant_gateway.service import ServiceError, TenantGatewayService
    from tenant_gateway.settings import TenantGatewaySettings

    if not any(site.backend == "kubernetes" for site in load_sites(settings.sites_file).sites):
        return settings, None
    key = settings.gateway_key or SecretStr(generated_gateway_key(settings.state_dir))
    configured = load(TenantGatewaySettings, gateway_key=key)
    service = TenantGatewayService(endpoints.servers(settings), configured, port=0)
    try:
        url = await service.start()
    except ServiceError as error:
        await service.stop()
        raise UserError(str(error)) from None
    return settings.model_copy(
        update={"gateway_key": key, "tenant_gateway_url": settings.tenant_gateway_url or url}
    ), service


def tenant_gateway_command(
    host: Annotated[str, typer.Option("--host", help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Listen port (0: any free one).")] = 8495,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where endpoints.json is (default .gxwf).")
    ] = None,
) -> None:
    """Serve the tenant gateway (servers from settings or endpoints.json; GXWF_GATEWAY_KEY required) until
    SIGTERM or Ctrl-C."""
    settings = load_settings(state_dir)
    asyncio.run(_serve(settings, host, port))


async def _serve(settings: Settings, host: str, port: int) -> None:
    from gxwf.endpoints import Endpoints
    from gxwf.runtime import prepare_streams
    from gxwf.serving import serve_until_signalled
    from tenant_gateway.service import ServiceError, TenantGatewayService
    from tenant_gateway.settings import TenantGatewaySettings

    try:
        endpoints = Endpoints.resolve(settings, "tenant_gateway")
    except LookupError as error:
        raise UserError(str(error)) from None
    try:
        service = TenantGatewayService(endpoints.servers(settings), load(TenantGatewaySettings), host=host, port=port)
    except ServiceError as error:
        raise UserError(str(error)) from None

    async def start(services: contextlib.AsyncExitStack) -> None:
        await prepare_streams(endpoints.nats, settings)
        services.push_async_callback(service.stop)
        try:
            url = await service.start()
        except ServiceError as error:
            raise UserError(str(error)) from None
        print(f"tenant gateway listening on {url}", flush=True)

    await serve_until_signalled(start)
