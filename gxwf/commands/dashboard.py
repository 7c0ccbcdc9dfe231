"""`gxwf dashboard`, and the dashboard inside `gxwf up`: settings, tokens, start and stop."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gxwf.endpoints import stack_nats_monitor
from gxwf.errors import UserError
from gxwf.settings import Settings, load, load_settings

if TYPE_CHECKING:
    from dashboard.auth import Tokens
    from dashboard.service import DashboardService
    from dashboard.settings import DashboardSettings
    from gxwf.endpoints import Endpoints

TOKEN_FILE = "dashboard-token"  # noqa: S105 - a file name
ADMIN_TOKEN_FILE = "dashboard-admin-token"  # noqa: S105 - a file name
DEFAULT_PORT = 8500


def load_dashboard_settings() -> DashboardSettings:
    from dashboard.settings import DashboardSettings

    return load(DashboardSettings)


def dashboard_tokens(settings: DashboardSettings, state_dir: Path) -> tuple[Tokens, dict[str, str]]:
    """The configured tokens, or ones kept in the state directory (made on first use); returns which of them
    were not configured, to be printed, since nobody could log in otherwise."""
    from dashboard.auth import Tokens, stored_or_new

    shown: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, configured, file in (
        ("GXWF_DASHBOARD_TOKEN", settings.dashboard_token, TOKEN_FILE),
        ("GXWF_DASHBOARD_ADMIN_TOKEN", settings.dashboard_admin_token, ADMIN_TOKEN_FILE),
    ):
        if configured is not None:
            values[name] = configured.get_secret_value()
            continue
        try:
            values[name], _ = stored_or_new(state_dir, file)
        except OSError as error:
            # A read-only container, say: there the tokens come from a Secret.
            raise UserError(
                f"{name}: unset, and a generated one cannot be kept in {state_dir} ({error.strerror}); set it"
            ) from None
        shown[name] = values[name]
    try:
        return Tokens(values["GXWF_DASHBOARD_TOKEN"], values["GXWF_DASHBOARD_ADMIN_TOKEN"]), shown
    except ValueError as error:
        raise UserError(f"GXWF_DASHBOARD_TOKEN / GXWF_DASHBOARD_ADMIN_TOKEN: {error}") from None


def _monitor_url(settings: DashboardSettings, state_dir: Path, known: str | None) -> str | None:
    if settings.nats_monitor_url:
        return settings.nats_monitor_url
    return known or stack_nats_monitor(state_dir)


def build_dashboard(
    settings: Settings,
    endpoints: Endpoints,
    *,
    host: str | None = None,
    port: int | None = None,
    nats_monitor: str | None = None,
) -> tuple[DashboardService, dict[str, str]]:
    from dashboard.service import DashboardService, Servers
    from gxwf.definitions import load_sites

    config = load_dashboard_settings()
    tokens, shown = dashboard_tokens(config, settings.state_dir)
    servers = Servers(
        nats=endpoints.nats,
        mongo=endpoints.mongo,
        mongo_database=settings.mongo_database,
        s3=endpoints.s3 or None,
        s3_bucket=settings.s3_bucket,
        s3_access_key=endpoints.s3_access_key,
        s3_secret_key=endpoints.s3_secret_key,
        s3_region=settings.s3_region,
        nats_monitor=_monitor_url(config, settings.state_dir, nats_monitor),
    )
    chosen_port = port if port is not None else config.dashboard_port
    if port is None and "dashboard_port" not in config.model_fields_set:
        from http_serving.server import port_free

        # Like the ingress: the default port when free, else any, so a second `gxwf up` still starts.
        chosen_port = DEFAULT_PORT if port_free(config.dashboard_host, DEFAULT_PORT) else 0
    service = DashboardService(
        servers,
        tokens,
        sites=load_sites(settings.sites_file).sites,
        host=host or config.dashboard_host,
        port=chosen_port,
        max_clients=config.dashboard_max_clients,
        runs_dir=settings.state_dir / "runs",
        runs_per_site=settings.runs_per_site,
        session_seconds=config.dashboard_session_seconds,
        login_failures_per_address=config.dashboard_login_failures_per_address,
        login_failures_total=config.dashboard_login_failures_total,
    )
    return service, shown


async def start_dashboard(service: DashboardService) -> str:
    from dashboard.service import ListenError

    try:
        return await service.start()
    except ListenError as error:
        await service.stop()
        raise UserError(f"--port / GXWF_DASHBOARD_PORT: {error}") from None


def dashboard_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default GXWF_DASHBOARD_HOST).")] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Listen port (default GXWF_DASHBOARD_PORT, 8500)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where endpoints.json is (default .gxwf).")
    ] = None,
) -> None:
    """Serve the ops dashboard alone (servers from settings or endpoints.json) until SIGTERM or Ctrl-C."""
    from gxwf.endpoints import Endpoints

    settings = load_settings(state_dir)
    try:
        endpoints = Endpoints.resolve(settings, "dashboard")
    except LookupError as error:
        raise UserError(str(error)) from None
    service, shown = build_dashboard(settings, endpoints, host=host, port=port)
    asyncio.run(_serve(service, shown))


async def _serve(service: DashboardService, shown: dict[str, str]) -> None:
    from gxwf.serving import serve_until_signalled

    async def start(services: contextlib.AsyncExitStack) -> None:
        url = await start_dashboard(service)
        services.push_async_callback(service.stop)
        print(f"dashboard listening on {url}", flush=True)
        for name, value in shown.items():
            print(f"{name}={value} (generated; set {name} to choose)", flush=True)

    await serve_until_signalled(start)
