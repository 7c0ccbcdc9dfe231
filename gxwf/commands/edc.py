"""`gxwf edc-ingress`, `gxwf edc simulate` and `gxwf edc register-dataplane`; the ingress they start is built
in gxwf/edc_ingress_setup.py."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import structlog
import typer

from gxwf.edc_ingress_setup import (
    KEY_FILE,
    build_ingress,
    generated_api_key,
    load_edc_settings,
    management_lookup,
    start_ingress,
    stored_api_key,
    trial_key,
)
from gxwf.endpoints import ServersUnknown, endpoints_file, known_servers, written_service
from gxwf.errors import UserError
from gxwf.settings import Settings, load_settings

if TYPE_CHECKING:
    from adapters.dataplane_registration import Registration
    from edc_ingress.settings import EdcSettings
    from gxwf.endpoints import Endpoints
    from gxwf.simulate import SimulateOptions
    from schemas.connectors import ManagementApi

log = structlog.get_logger("gxwf.edc")

edc_app = typer.Typer(help="EDC connectors: the ingress they call, and a connector simulator.", no_args_is_help=True)


def edc_ingress_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default GXWF_EDC_INGRESS_HOST).")] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="Listen port (default GXWF_EDC_INGRESS_PORT, 8480)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where endpoints.json is (default .gxwf).")
    ] = None,
) -> None:
    """Serve the EDC ingress alone (servers from settings or endpoints.json) until SIGTERM or Ctrl-C."""
    settings = load_settings(state_dir)
    edc = load_edc_settings()
    endpoints = _bus_and_store(settings)
    if edc.edc_api_key is None and edc.edc_connectors_file is None:
        # The same key as `gxwf up` keeps (or a new one, kept the same way), so `gxwf edc simulate` finds it.
        existing = stored_api_key(settings.state_dir)
        key = generated_api_key(settings.state_dir)
        edc = trial_key(edc, key)
        kept = settings.state_dir / KEY_FILE
        origin = "kept in" if existing else "generated, kept in"
        print(
            f"edc api key: {edc.edc_api_key_header}: {key} ({origin} {kept}; set GXWF_EDC_API_KEY to choose)",
            file=sys.stderr,
        )
    asyncio.run(_serve_ingress(settings, edc, endpoints, host, port))


def _bus_and_store(settings: Settings) -> Endpoints:
    """NATS and MongoDB from settings or endpoints.json; the ingress needs no object store."""
    from gxwf.endpoints import Endpoints

    try:
        found = known_servers(settings, ("nats", "mongo"), "edc_ingress")
    except ServersUnknown as error:
        raise UserError(str(error)) from None
    s3 = settings.s3_endpoint or ""
    with contextlib.suppress(ServersUnknown):
        s3 = known_servers(settings, ("s3",))["s3"]
    return Endpoints(found["nats"], found["mongo"], s3)


async def _serve_ingress(
    settings: Settings, edc: EdcSettings, endpoints: Endpoints, host: str | None, port: int | None
) -> None:
    from gxwf.runtime import prepare_streams
    from gxwf.serving import serve_until_signalled

    async def start(services: contextlib.AsyncExitStack) -> None:
        service = build_ingress(settings, edc, endpoints, host=host, port=port)
        await prepare_streams(endpoints.nats, settings)
        url = await start_ingress(service)
        services.push_async_callback(service.stop)
        print(f"edc ingress listening on {url}", flush=True)

    await serve_until_signalled(start)


@edc_app.command("simulate")
def simulate(
    edc_version: Annotated[
        str, typer.Option("--version", help="EDC generation to speak: 0.5, 0.10, 0.15, 0.18 or main.")
    ] = "0.15",
    provisioning: Annotated[
        bool,
        typer.Option(
            "--provisioning",
            help="EDC 0.18 only: its data-plane provisioner requests (ProvisionHttp) instead of Data Plane "
            "Signaling, the default of 0.18 and the only way of main.",
        ),
    ] = False,
    conflict_first_callback: Annotated[
        bool,
        typer.Option(
            "--conflict-first-callback",
            help="Data Plane Signaling: answer the first callback of each transfer 409, so the data plane retries.",
        ),
    ] = False,
    oauth2: Annotated[
        bool,
        typer.Option(
            "--oauth2",
            help="Data Plane Signaling with OAuth2 both ways, as EDC's data-plane-signaling-oauth2 does it: the "
            "simulator's own issuer; the data plane registers as its client (secret GXWF_EDC_CLIENT_SECRET, else "
            "random), messages carry its tokens, callbacks need one. Prints the ingress's settings for it.",
        ),
    ] = False,
    oauth2_port: Annotated[
        int, typer.Option("--oauth2-port", min=0, max=65535, help="With --oauth2: the issuer's port (default free).")
    ] = 0,
    ingress: Annotated[
        str | None, typer.Option("--ingress", help="Ingress URL (default: edc_ingress in endpoints.json).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", help="Key for the ingress (default GXWF_EDC_API_KEY, else the one `up` kept)."),
    ] = None,
    asset: Annotated[str, typer.Option("--asset", help="Asset the simulated consumer contracted.")] = "carla-minimal",
    consumer: Annotated[str, typer.Option("--consumer", help="Consumer id in the agreement.")] = (
        "did:web:consumer.example"
    ),
    transfers: Annotated[int, typer.Option("--transfers", min=1, max=1000, help="Transfers to run.")] = 1,
    resend: Annotated[int, typer.Option("--resend", min=0, max=10, help="Re-sends of each provision request.")] = 1,
    terminate: Annotated[
        bool, typer.Option("--terminate", help="Terminate the transfers instead of completing.")
    ] = False,
    callback_timeout: Annotated[
        float, typer.Option("--callback-timeout", min=0.1, help="Seconds to wait for each provisioner callback.")
    ] = 30.0,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port of the simulator's own API.")] = 0,
    management_key: Annotated[
        str | None, typer.Option("--management-key", help="Key of its management API (default: random, printed).")
    ] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Keep serving its management API afterwards.")] = False,
    keep_access: Annotated[
        bool,
        typer.Option(
            "--keep-access",
            help="Leave the transfers started (the consumer keeps its access) and write the consumer's client "
            "profile into the state directory.",
        ),
    ] = False,
    state_dir: Annotated[
        Path | None,
        typer.Option(
            "--state-dir", help="The running system's state directory: endpoints.json, API key (default .gxwf)."
        ),
    ] = None,
) -> None:
    """Play a provider connector of an EDC generation against the ingress: agreement, provisioning (re-sent
    while waiting), start, completion or termination, deprovisioning; print what it sent and received.

    EDC 0.18 and main act as a Data Plane Signaling control plane instead: the data plane registered at the
    simulator's management API (`{ingress}/dataflows` unless another was registered) gets start, suspend, resume
    and terminate (or completed); the callbacks are served under /api/signaling, and the consumer's token is tried
    at the WorkflowApi after each step.

    While it runs, its management API is registered in the state directory, so a system started without
    GXWF_EDC_MANAGEMENT_URL asks it about its transfers. Exits 1 when anything was refused or not provisioned.
    """
    from edc_simulator.versions import DPS_VERSIONS, version

    try:
        chosen = version(edc_version)
    except ValueError as error:
        raise UserError(f"--version {edc_version}: {error}") from None
    if provisioning and chosen.name != "0.18":
        raise UserError(f"--provisioning with --version {edc_version}: only EDC 0.18 has both ways")
    signaling = chosen.name in DPS_VERSIONS and not provisioning
    if conflict_first_callback and not signaling:
        raise UserError("--conflict-first-callback: only with Data Plane Signaling (--version 0.18 or main)")
    if (oauth2 or oauth2_port) and not signaling:
        raise UserError("--oauth2: only with Data Plane Signaling (--version 0.18 or main)")
    if keep_access and terminate:
        raise UserError("--keep-access and --terminate: give one (a kept transfer is neither ended nor terminated)")
    settings = load_settings(state_dir)
    edc = load_edc_settings()
    try:
        url = ingress or written_service(settings, "edc_ingress")
    except ServersUnknown as error:
        raise UserError(str(error)) from None
    if not url:
        raise UserError(
            f"no ingress known in {endpoints_file(settings)}: start `gxwf up` (or pass --state-dir "
            "DIR of the one running), or pass --ingress URL"
        )
    key = api_key or (edc.edc_api_key.get_secret_value() if edc.edc_api_key else None)
    key = key or stored_api_key(settings.state_dir)
    if not key:
        raise UserError(
            f"no API key: pass --api-key, set GXWF_EDC_API_KEY, or start `gxwf up` (it keeps one in "
            f"{settings.state_dir / KEY_FILE}; --state-dir DIR for another)"
        )
    from gxwf.simulate import SimulateOptions

    options = SimulateOptions(
        version=chosen,
        ingress_url=url,
        api_key=key,
        api_key_header=edc.edc_api_key_header,
        asset=asset,
        consumer=consumer,
        transfers=transfers,
        resend=resend,
        terminate=terminate,
        callback_timeout=callback_timeout,
        port=port,
        management_key=management_key,
        serve=serve,
        complete=not keep_access,
        state_dir=settings.state_dir,
        signaling=signaling,
        conflict_first=conflict_first_callback,
        oauth2=oauth2 or bool(oauth2_port),
        oauth2_port=oauth2_port,
        dataplane_secret=edc.edc_client_secret.get_secret_value() if edc.edc_client_secret else None,
    )
    if edc.edc_management_url is not None:
        print(
            "GXWF_EDC_MANAGEMENT_URL is set: a system started with it asks that connector, not this simulator",
            file=sys.stderr,
        )
    mongo = None
    # Only asked why a provisioning failed: without a store the simulation still runs.
    with contextlib.suppress(ServersUnknown):
        mongo = known_servers(settings, ("mongo",))["mongo"]
    if not asyncio.run(_simulate(options, mongo, settings.mongo_database)):
        raise typer.Exit(1)


async def _simulate(options: SimulateOptions, mongo_url: str | None, database: str) -> bool:
    """The simulation, with the running system's store to say why a provisioning failed."""
    from adapters.mongo_store import MongoStateStore
    from gxwf.simulate import run_simulation
    from schemas.provisioning import ProvisionDocument

    if mongo_url is None:
        return await run_simulation(options)
    store = MongoStateStore.connect(mongo_url, database)

    async def provision(transfer_process_id: str) -> ProvisionDocument | None:
        try:
            async with asyncio.timeout(5):
                return await store.get(ProvisionDocument, transfer_process_id)
        except Exception:  # the store is only asked for the cause; the story's outcome stands without it
            return None

    try:
        return await run_simulation(options, provisions=provision)
    finally:
        await store.close()


@edc_app.command("register-dataplane")
def register_dataplane(
    connector: Annotated[
        str | None,
        typer.Option("--connector", help="Connector to register at (default: GXWF_EDC_CONNECTOR_NAME's)."),
    ] = None,
    dataplane_id: Annotated[
        str | None,
        typer.Option(
            "--dataplane-id",
            help="Our data plane's id there (default: the connector's client_id, the sub of our callback tokens, "
            "else GXWF_EDC_DATAPLANE_ID).",
        ),
    ] = None,
    ingress: Annotated[
        str | None,
        typer.Option("--ingress", help="Ingress URL the connector reaches (default: edc_ingress in endpoints.json)."),
    ] = None,
    transfer_types: Annotated[
        list[str] | None,
        typer.Option("--transfer-type", help="Transfer type served (repeatable; default HttpData-PULL)."),
    ] = None,
    labels: Annotated[list[str] | None, typer.Option("--label", help="Label (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the request body, send nothing.")] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", help="With --dry-run: print the client secret unmasked.")
    ] = False,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="The running system's state directory (default .gxwf).")
    ] = None,
) -> None:
    """Register the ingress as an external data plane (Data Plane Signaling) at a connector's management API:
    `PUT {management}/v4/dataplanes`. Idempotent: the same id again replaces the registration with itself."""
    import json

    from adapters.dataplane_registration import DEFAULT_TRANSFER_TYPES, Registration, dataplanes_url
    from edc_ingress.settings import ConfigError, connector_registry

    settings = load_settings(state_dir)
    edc = load_edc_settings()
    if edc.edc_api_key is None and edc.edc_connectors_file is None:
        edc = trial_key(edc, stored_api_key(settings.state_dir) or secrets.token_urlsafe(32))
    try:
        registry = connector_registry(edc)
    except ConfigError as error:
        raise UserError(str(error)) from None
    name = connector or edc.edc_connector_name
    try:
        chosen = registry.get(name)
    except KeyError:
        raise UserError(f"--connector {name}: no such connector (configured: {', '.join(registry.names)})") from None
    try:
        base = ingress or written_service(settings, "edc_ingress")
    except ServersUnknown as error:
        raise UserError(str(error)) from None
    if not base:
        raise UserError(
            f"no ingress known in {endpoints_file(settings)}: start `gxwf up` (or pass --state-dir DIR of the one "
            "running), or pass --ingress URL"
        )
    registration = Registration(
        dataplane_id=dataplane_id or chosen.client_id or edc.edc_dataplane_id,
        endpoint=base.rstrip("/") + "/dataflows",
        transfer_types=tuple(transfer_types or DEFAULT_TRANSFER_TYPES),
        labels=tuple(labels or ()),
        connector=chosen,
    )
    api = chosen.management() or management_lookup(settings, edc)(chosen)
    if dry_run:
        where = dataplanes_url(api) if api is not None else "(no management API configured)"
        print(f"PUT {where}")
        print(json.dumps(registration.body(show_secrets=show_secrets), indent=2))
        return
    if api is None:
        raise UserError(
            f"connector {name}: no management API configured: set GXWF_EDC_MANAGEMENT_URL (or management_url in "
            "the connectors file)"
        )
    asyncio.run(_register(api, registration))


async def _register(api: ManagementApi, registration: Registration) -> None:
    from adapters.dataplane_registration import RegistrationFailed, register_dataplane

    try:
        answer = await register_dataplane(api, registration)
    except RegistrationFailed as error:
        raise UserError(f"data plane not registered: {error}") from None
    print(
        f"registered data plane {registration.dataplane_id} ({registration.endpoint}) at {answer.url}: {answer.status}"
    )
