"""`gxwf edc simulate`: a simulated connector's stories against the ingress, printed for people."""

from __future__ import annotations

import os
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from adapters.management_registration import register, unregister
from edc_simulator.connector import SimulatedConnector, StoryReport
from edc_simulator.dps import Generation
from edc_simulator.dps_auth import oauth2_profile
from edc_simulator.dps_story import DpsReport, dps_story
from edc_simulator.versions import EdcVersion
from gxwf.demo_consumer import consumer_access, write_profile
from gxwf.program import program
from gxwf.serving import serve_until_signalled
from schemas.connectors import ManagementApi
from schemas.provisioning import ProvisionDocument, ProvisionState

# The provision document of a transfer, from the running system's store (None: not recorded there).
ProvisionReader = Callable[[str], Awaitable[ProvisionDocument | None]]
PROFILE = "simulated-consumer.json"


@dataclass(frozen=True)
class SimulateOptions:
    version: EdcVersion
    ingress_url: str
    api_key: str
    api_key_header: str = "x-api-key"
    asset: str = "carla-minimal"
    consumer: str = "did:web:consumer.example"
    transfers: int = 1
    resend: int = 1
    terminate: bool = False
    callback_timeout: float = 30.0
    port: int = 0
    management_key: str | None = None
    serve: bool = False
    complete: bool = True
    # Where the running system looks for this simulator's management API, and consumer profiles go.
    state_dir: Path | None = None
    # Drive the data plane through Data Plane Signaling (EDC 0.18's default, main's only way) instead of the
    # provisioner requests; with it, answer the first signaling callback of each transfer 409 (a retry test).
    signaling: bool = False
    conflict_first: bool = False
    # OAuth2 both ways through the simulator's own issuer (on `oauth2_port`); the data plane's client secret.
    oauth2: bool = False
    oauth2_port: int = 0
    dataplane_secret: str | None = None


def simulator_management(connector: SimulatedConnector) -> ManagementApi:
    """The simulator's management API as the running system is to ask it: the version its EDC speaks."""
    return ManagementApi(
        url=connector.management_url,
        api_version=connector.version.management_path,
        key=SecretStr(connector.management_key),
        registered=True,
    )


async def run_simulation(
    options: SimulateOptions,
    console: Console | None = None,
    connector: SimulatedConnector | None = None,
    provisions: ProvisionReader | None = None,
) -> bool:
    """True when the ingress accepted everything the connector sent and every transfer was provisioned.
    `connector`: one already serving (its management API known to the handlers), which the caller stops.
    `provisions`: where to read why a provisioning failed."""
    out = console or Console()
    owned = connector is None
    if connector is None:
        connector = SimulatedConnector(
            options.version,
            ingress_url=options.ingress_url,
            api_key=options.api_key,
            api_key_header=options.api_key_header,
            management_key=options.management_key,
            port=options.port,
            oauth2=options.oauth2,
            oauth2_port=options.oauth2_port,
            dataplane_secret=options.dataplane_secret,
        )
        await connector.start()
    else:
        connector.ingress_url = options.ingress_url.rstrip("/")
        connector.api_key, connector.api_key_header = options.api_key, options.api_key_header
    management = simulator_management(connector)
    registered = owned and options.state_dir is not None
    try:
        if registered and options.state_dir is not None:
            path = register(options.state_dir, management)
            where = f"; registered in {path} for the running system"
        else:
            where = ""
        out.print(
            f"EDC {options.version.name} simulator: management API {connector.management_url} "
            f"({options.version.management_path}, x-api-key: {connector.management_key}){where}; "
            f"calling {options.ingress_url}"
        )
        if connector.issuer is not None:
            _print_oauth2_settings(out, connector, options)
        if options.signaling:
            ok = await _signaling_stories(options, connector, out, provisions)
            if options.serve:
                out.print("Serving the management API and the signaling callbacks. Ctrl-C stops it.")
                await serve_until_signalled()
            return ok
        ok = True
        for _ in range(options.transfers):
            try:
                report = await connector.story(
                    asset_id=options.asset,
                    consumer_id=options.consumer,
                    resend=options.resend,
                    callback_timeout=options.callback_timeout,
                    terminate=options.terminate,
                    complete=options.complete,
                )
            except httpx.TransportError as error:
                out.print(f"[red]cannot reach the ingress at {options.ingress_url}: {error}")
                return False
            ok = _print(out, report, options.callback_timeout, options.complete) and ok
            if report.provisioned is None:
                ok = False
                out.print(f"[red]{await _why_not_provisioned(report, provisions, options.callback_timeout)}")
            elif not options.complete and options.state_dir is not None:
                access = consumer_access(connector, report.transfer.id)
                if access is not None:
                    profile = write_profile(options.state_dir, *access, name=PROFILE)
                    out.print(f"the consumer's client profile (url, token): {profile}")
                    command = f"{program()} client --profile {shlex.quote(str(profile))} assets list"
                    out.print(f"use it: {command}", markup=False, soft_wrap=True)
        if options.serve:
            out.print("Serving the management API. Ctrl-C stops it.")
            await serve_until_signalled()
        return ok
    finally:
        if registered and options.state_dir is not None:
            unregister(options.state_dir, management)
        if owned:
            await connector.stop()


async def _signaling_stories(
    options: SimulateOptions,
    connector: SimulatedConnector,
    out: Console,
    provisions: ProvisionReader | None,
) -> bool:
    """Each transfer as a Data Plane Signaling control plane drives it; True when all went as EDC expects."""
    connector.ledger.conflict_first = options.conflict_first
    out.print(f"signaling callbacks served at {connector.signaling_url}")
    generation: Generation = "main" if options.version.name == "main" else "0.18"
    ok = True
    for _ in range(options.transfers):
        try:
            report = await dps_story(
                connector,
                generation,
                asset_id=options.asset,
                consumer_id=options.consumer,
                callback_timeout=options.callback_timeout,
                terminate=options.terminate,
                complete=options.complete,
            )
        except httpx.TransportError as error:
            out.print(f"[red]cannot reach the data plane: {error}")
            return False
        print_dps(out, report)
        if not report.ok:
            ok = False
            out.print(f"[red]{await _why_not_started(report, provisions)}")
        elif not options.complete and options.state_dir is not None and report.address is not None:
            profile = write_profile(options.state_dir, *report.address, name=PROFILE)
            out.print(f"the consumer's client profile (url, token): {profile}")
            command = f"{program()} client --profile {shlex.quote(str(profile))} assets list"
            out.print(f"use it: {command}", markup=False, soft_wrap=True)
    return ok


OAUTH2_ENV = "edc-simulator-oauth2.env"
# The default connector's OAuth2 settings, either direction.
OAUTH2_SETTINGS = (
    "GXWF_EDC_JWKS_URL",
    "GXWF_EDC_TOKEN_ISSUER",
    "GXWF_EDC_TOKEN_AUDIENCE",
    "GXWF_EDC_TOKEN_SUBJECT",
    "GXWF_EDC_TOKEN_URL",
    "GXWF_EDC_CLIENT_ID",
    "GXWF_EDC_CLIENT_SECRET",
)


def oauth2_environment(connector: SimulatedConnector) -> dict[str, str]:
    """The simulated control plane's OAuth2 as the default connector's settings (GXWF_EDC_*) of the ingress."""
    names = {"token_url": "TOKEN_URL", "client_id": "CLIENT_ID", "client_secret": "CLIENT_SECRET"}
    return {f"GXWF_EDC_{names.get(k, k.upper())}": v for k, v in connector.oauth2_settings().items()}


def _print_oauth2_settings(out: Console, connector: SimulatedConnector, options: SimulateOptions) -> None:
    """What the ingress needs to take this control plane's tokens and to call it back with its own: printed, the
    client secret only written (mode 0600) into the state directory, or named when it came from the setting."""
    assert connector.issuer is not None
    environment = oauth2_environment(connector)
    out.print(f"OAuth2 issuer: {connector.issuer.issuer} (token endpoint and JWKS)", markup=False, soft_wrap=True)
    out.print("the ingress takes its tokens and calls it back with these settings of the connector:", markup=False)
    for name, value in environment.items():
        if name == "GXWF_EDC_CLIENT_SECRET":
            continue
        out.print(f"  {name}={value}", markup=False, soft_wrap=True)
    if options.dataplane_secret is not None:
        out.print("  GXWF_EDC_CLIENT_SECRET: the one set (the data plane's client secret)", markup=False)
    elif options.state_dir is not None:
        path = options.state_dir / OAUTH2_ENV
        options.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
        with os.fdopen(fd, "w") as handle:
            handle.writelines(f"{name}={value}\n" for name, value in environment.items())
        out.print(f"  GXWF_EDC_CLIENT_SECRET: generated; all of them in {path} (mode 0600)", markup=False)


def print_dps(out: Console, report: DpsReport) -> None:
    plane = report.dataplane
    if plane is not None:
        out.print(f"data plane {plane.dataplane_id} at {plane.endpoint}", markup=False, soft_wrap=True)
        profile = oauth2_profile(plane.authorization)
        if profile is not None:
            out.print(
                f"OAuth2 both ways: messages carry tokens of {profile.get('tokenEndpoint')} (client "
                f"{profile.get('clientId')}); callbacks need a token its JWKS verifies with sub {plane.dataplane_id}",
                markup=False,
                soft_wrap=True,
            )
    table = Table(title=f"EDC {report.version} (Data Plane Signaling): transfer {report.transfer.id}")
    for column in ("sent", "route", "status", "answer"):
        table.add_column(column)
    for sent in report.sent:
        ok = 200 <= sent.status < 300
        answer = sent.answer.get("state", sent.answer) if isinstance(sent.answer, dict) else sent.answer
        table.add_row(sent.what, sent.path, f"[{'green' if ok else 'red'}]{sent.status}", str(answer)[:120])
    out.print(table)
    for callback in report.callbacks:
        state = callback.body.get("state") if isinstance(callback.body, dict) else None
        why = f" (token refused: {callback.refused})" if callback.refused else ""
        out.print(f"callback received: {callback.kind} ({state}), answered {callback.status}{why}", markup=False)
    for address, moment in ((report.address, "started"), (report.resumed, "resumed")):
        if address is not None:
            out.print(f"data address ({moment}): {address[0]} (bearer: {len(address[1])}-character token)")
    for check in report.checks:
        colour = "green" if check.ok else "red"
        out.print(
            f"token {check.moment}: GET {check.url} -> [{colour}]{check.status}[/{colour}] (expected {check.expected}, "
            f"after {check.waited:.1f} s)"
        )


async def _why_not_started(report: DpsReport, provisions: ProvisionReader | None) -> str:
    tp = report.transfer.id
    doc = await provisions(tp) if provisions is not None else None
    if doc is not None and doc.state == ProvisionState.FAILED:
        return f"provisioning of transfer {tp} failed ({doc.failed_step or 'unknown step'}): {doc.reason}"
    if report.errored is not None:
        body = report.errored.body if isinstance(report.errored.body, dict) else {}
        return f"the data plane called back errored for transfer {tp}: {body.get('error') or 'no reason given'}"
    if report.missing is not None:
        return f"transfer {tp}: {report.missing}"
    refused = next((s for s in report.sent if not 200 <= s.status < 300), None)
    if refused is not None and refused.what == "start" and refused.status in (404, 405):
        where = report.dataplane.endpoint if report.dataplane is not None else "the data plane"
        return (
            f"transfer {tp}: {where}/start answered {refused.status}: no Data Plane Signaling endpoint there "
            "(an ingress without /dataflows? with --version 0.18, --provisioning plays its provisioner requests)"
        )
    if refused is not None and refused.status == 401:
        return (
            f"transfer {tp}: the data plane refused this control plane's credentials on {refused.what} (401): "
            "is it configured with this connector's key, or with its token issuer (jwks_url, token_issuer, "
            "token_audience)?"
        )
    if refused is not None:
        return f"transfer {tp}: the data plane answered {refused.what} with {refused.status}: {refused.answer}"
    unauthorized = [c for c in report.callbacks if c.status == 401]
    if unauthorized:
        return (
            f"transfer {tp}: this control plane refused the data plane's callbacks (401: {unauthorized[0].refused}): "
            "its token must come from this connector's token endpoint as the registered client"
        )
    failed = [c for c in report.checks if not c.ok]
    return "; ".join(f"token {c.moment}: {c.status}, expected {c.expected}" for c in failed) or f"transfer {tp}"


async def _why_not_provisioned(report: StoryReport, provisions: ProvisionReader | None, timeout: float) -> str:
    """The cause as the running system recorded it; the connector's view when the store cannot say."""
    tp = report.transfer.id
    doc = await provisions(tp) if provisions is not None else None
    if doc is not None and doc.state == ProvisionState.FAILED:
        return f"provisioning of transfer {tp} failed ({doc.failed_step or 'unknown step'}): {doc.reason}"
    if doc is not None:
        return f"provisioning of transfer {tp} still {doc.state} after {timeout:g}s"
    if report.refused is not None:
        body = report.refused.body if isinstance(report.refused.body, dict) else {}
        return f"provisioning of transfer {tp} refused: {body.get('errorMessage') or 'no reason given'}"
    if provisions is not None:
        return (
            f"no provisioning recorded for transfer {tp} within {timeout:g}s: are the handlers running "
            "(`gxwf up`), and did the ingress take the request?"
        )
    return f"no provision callback for transfer {tp} within {timeout:g}s (no store known to say why)"


def _print(out: Console, report: StoryReport, timeout: float, complete: bool = True) -> bool:
    table = Table(title=f"EDC {report.version}: transfer {report.transfer.id}")
    for column in ("sent", "route", "status", "events"):
        table.add_column(column)
    accepted = True
    for sent in report.sent:
        ok = 200 <= sent.status < 300
        accepted = accepted and ok
        if ok and isinstance(sent.answer, dict):
            events = ", ".join(item["type"] for item in sent.answer.get("accepted", []))
        else:
            events = str(sent.answer)[:120]
        table.add_row(sent.what, sent.path, f"[{'green' if ok else 'red'}]{sent.status}", events)
    out.print(table)
    if report.provisioned is None:
        return accepted
    out.print(f"provision callback received ({report.provisioned.provisioner} path){_address(report.provisioned.body)}")
    if report.deprovisioned is not None:
        out.print(f"deprovision callback received ({report.deprovisioned.provisioner} path)")
    elif complete:
        out.print(f"[yellow]no deprovision callback within {timeout:g}s")
        return False
    return accepted


def _address(body: object) -> str:
    """Where the consumer's access points, without the token itself."""
    if not isinstance(body, dict):
        return ""
    address = body.get("contentDataAddress") or body.get("dataAddress") or {}
    properties = address.get("properties", {}) if isinstance(address, dict) else {}
    if not isinstance(properties, dict) or "baseUrl" not in properties:
        return ""
    token = str(properties.get("authCode", ""))
    return f": {properties['baseUrl']} ({properties.get('authKey')}: {len(token)}-character token)"


async def edc_demo(
    console: Console,
    ingress_url: str,
    api_key: str,
    api_key_header: str,
    connector: SimulatedConnector | None = None,
    asset: str = "carla-minimal",
) -> bool:
    """The `gxwf up --demo` part on the EDC side: one transfer of a simulated provider connector (EDC 0.15
    unless the connector given speaks another), left started with the consumer's access granted; EDC 0.18 and
    main through Data Plane Signaling."""
    from edc_simulator.versions import DPS_VERSIONS, version

    chosen = connector.version if connector is not None else version("0.15")
    signaling = chosen.name in DPS_VERSIONS
    how = "the data plane signaling endpoint" if signaling else "the ingress"
    console.rule(f"[bold]demo: a provider connector (EDC {chosen.name}) calls {how}")
    options = SimulateOptions(
        version=chosen,
        ingress_url=ingress_url,
        api_key=api_key,
        api_key_header=api_key_header,
        asset=asset,
        callback_timeout=15.0,
        complete=False,
        signaling=signaling,
    )
    return await run_simulation(options, console, connector)
