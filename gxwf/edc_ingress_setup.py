"""The ingress as the commands build it: its settings, the API key `gxwf up` generates for a trial, where the
default connector's management API is found, and its start (`gxwf edc-ingress`, `gxwf up`, the handlers)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from pydantic import SecretStr

from gxwf.errors import UserError
from gxwf.settings import Settings, load
from http_serving.server import port_free

if TYPE_CHECKING:
    from adapters.management_registration import RegisteredManagement
    from edc_ingress.service import IngressService
    from edc_ingress.settings import EdcSettings
    from gxwf.endpoints import Endpoints
    from schemas.connectors import ManagementApi

log = structlog.get_logger("gxwf.edc")

KEY_FILE = "edc-api-key"


def load_edc_settings() -> EdcSettings:
    from edc_ingress.settings import EdcSettings

    return load(EdcSettings)


def stored_api_key(state_dir: Path) -> str | None:
    path = state_dir / KEY_FILE
    if not path.exists():
        return None
    return path.read_text().strip() or None


def generated_api_key(state_dir: Path) -> str:
    """The key `gxwf up` uses when GXWF_EDC_API_KEY is unset: kept in the state directory (mode 0600), so a
    connector configured with it keeps working across restarts."""
    existing = stored_api_key(state_dir)
    if existing:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path = state_dir / KEY_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def trial_key(edc: EdcSettings, key: str) -> EdcSettings:
    """The default connector with a key generated on this machine: a trial, whose simulated stock provisioners
    send the key in the query as real ones must, so the query is accepted unless GXWF_EDC_API_KEY_IN_QUERY says
    otherwise. A configured key (GXWF_EDC_API_KEY) is accepted there only when that variable says so."""
    update: dict[str, object] = {"edc_api_key": SecretStr(key)}
    if "edc_api_key_in_query" not in edc.model_fields_set:
        update["edc_api_key_in_query"] = True
    return edc.model_copy(update=update)


def management_lookup(
    settings: Settings, edc: EdcSettings, fallback: ManagementApi | None = None
) -> RegisteredManagement:
    """Where the EDC clients find the default connector's management API when GXWF_EDC_MANAGEMENT_URL is
    unset (it always wins): the simulator registered in the state directory, else `fallback`."""
    from adapters.management_registration import RegisteredManagement

    return RegisteredManagement(settings.state_dir, edc.edc_connector_name, fallback)


def build_ingress(
    settings: Settings,
    edc: EdcSettings,
    endpoints: Endpoints,
    *,
    host: str | None,
    port: int | None,
    demo_management: ManagementApi | None = None,
) -> IngressService:
    from edc_ingress.service import IngressService
    from edc_ingress.settings import ConfigError, connector_registry

    try:
        registry = connector_registry(edc)
    except ConfigError as error:
        raise UserError(str(error)) from None
    return IngressService(
        edc,
        registry,
        nats_url=endpoints.nats,
        mongo_url=endpoints.mongo,
        mongo_database=settings.mongo_database,
        host=host,
        port=port,
        management_lookup=management_lookup(settings, edc, demo_management),
    )


async def start_ingress(service: IngressService) -> str:
    from edc_ingress.settings import ConfigError

    try:
        return await service.start()
    except ConfigError as error:
        await service.stop()
        raise UserError(str(error)) from None


async def start_for_up(
    settings: Settings, endpoints: Endpoints, demo_management: ManagementApi | None = None
) -> tuple[IngressService, str | None]:
    """The ingress inside `gxwf up`; returns the service and the API key when it was generated here.

    Its port is GXWF_EDC_INGRESS_PORT when set, else 8480 when free, else any free port (endpoints.json says
    which): a second `gxwf up` on one machine must not fail for a port clash. `demo_management`: the demo's
    simulated connector, asked when neither GXWF_EDC_MANAGEMENT_URL nor a running `gxwf edc simulate` says
    where the default connector's management API is.
    """
    edc = load_edc_settings()
    if demo_management is not None and edc.edc_management_url is not None:
        log.warning("GXWF_EDC_MANAGEMENT_URL is set: the demo's transfer is asked there, not at its simulator")
    generated: str | None = None
    if edc.edc_api_key is None and edc.edc_connectors_file is None:
        generated = generated_api_key(settings.state_dir)
        edc = trial_key(edc, generated)
    port = None
    if "edc_ingress_port" not in edc.model_fields_set and not port_free(edc.edc_ingress_host, edc.edc_ingress_port):
        port = 0
    service = build_ingress(settings, edc, endpoints, host=None, port=port, demo_management=demo_management)
    await start_ingress(service)
    return service, generated
