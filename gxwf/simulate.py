"""`gxwf edc simulate`: a simulated connector's stories against the ingress, printed for people."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import httpx
from rich.console import Console
from rich.table import Table

from edc_simulator.connector import SimulatedConnector, StoryReport
from edc_simulator.versions import EdcVersion


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


async def run_simulation(
    options: SimulateOptions, console: Console | None = None, connector: SimulatedConnector | None = None
) -> bool:
    """True when the ingress accepted everything the connector sent. `connector`: one already serving (its
    management API configured for the handlers), which the caller stops."""
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
        )
        await connector.start()
    else:
        connector.ingress_url = options.ingress_url.rstrip("/")
        connector.api_key, connector.api_key_header = options.api_key, options.api_key_header
    try:
        out.print(
            f"EDC {options.version.name} simulator: management API {connector.management_url} "
            f"(v: {options.version.management_path}, x-api-key: {connector.management_key}); "
            f"calling {options.ingress_url}"
        )
        accepted = True
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
            accepted = _print(out, report, options.callback_timeout, options.complete) and accepted
        if options.serve:
            out.print("Serving the management API. Ctrl-C stops it.")
            await _until_signalled()
        return accepted
    finally:
        if owned:
            await connector.stop()


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
    for action, callback in (("provision", report.provisioned), ("deprovision", report.deprovisioned)):
        if callback is not None:
            out.print(f"{action} callback received ({callback.provisioner} path){_address(callback.body)}")
        elif action == "provision" or (report.provisioned is not None and complete):
            out.print(
                f"[yellow]no {action} callback within {timeout:g}s: the provisioning handlers answer it "
                "(are they running, and is this connector's management API configured?)"
            )
            break
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


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def edc_demo(
    console: Console,
    ingress_url: str,
    api_key: str,
    api_key_header: str,
    connector: SimulatedConnector | None = None,
    asset: str = "carla-minimal",
) -> bool:
    """The `gxwf up --demo` part on the EDC side: one transfer of a simulated EDC 0.15 provider connector,
    left started with the consumer's access granted."""
    from edc_simulator.versions import version

    console.rule("[bold]demo: a provider connector (EDC 0.15) calls the ingress")
    options = SimulateOptions(
        version=connector.version if connector is not None else version("0.15"),
        ingress_url=ingress_url,
        api_key=api_key,
        api_key_header=api_key_header,
        asset=asset,
        callback_timeout=15.0,
        complete=False,
    )
    return await run_simulation(options, console, connector)
