"""The consumer's side of `gxwf up --demo`: with the access its connector received, upload a route, start the
CARLA stand-in on it, follow its log and download the results, through the WorkflowApi like any consumer.

The demo machine has no GPU site, so its catalogue serves the connector's asset `carla-minimal` with the CPU
stand-in (deploy/assets/carla-minimal-cpu.yaml, which answers to that id too); a provider with a GPU site applies
the real one (deploy/assets/gpu/carla-minimal.yaml).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from gxwf_client.client import ApiError, WorkflowClient
from gxwf_client.models import RunStatus
from rich.console import Console

from edc_simulator.connector import SimulatedConnector
from gxwf.definitions import load_assets
from gxwf.shipped_assets import SHIPPED
from schemas.assets import WorkflowAssetDefinition

EDC_ASSET = "carla-minimal"
PROFILE = "demo-consumer.json"
# Used when the repository's example route is not next to the installed package.
_ROUTE = "x,y\n0,0\n60,0\n85,10\n95,35\n95,80\n80,100\n40,105\n10,95\n-5,70\n-5,30\n"


def carla_demo_asset() -> WorkflowAssetDefinition:
    """The shipped definition as it is, so applying deploy/assets after the demo changes nothing."""
    definition = load_assets(SHIPPED / "carla-minimal-cpu.yaml")[0]
    if not definition.answers_to(EDC_ASSET):
        raise ValueError(f"{SHIPPED / 'carla-minimal-cpu.yaml'}: edc_asset_ids must list {EDC_ASSET}")
    return definition


def consumer_access(connector: SimulatedConnector, transfer_id: str) -> tuple[str, str] | None:
    """The WorkflowApi URL and token our provisioning sent the connector for this transfer (through Data Plane
    Signaling: the data address of the `started` callback or answer)."""
    if transfer_id in connector.ledger.access:
        return connector.ledger.access[transfer_id]
    for callback in connector.ledger.callbacks:
        if callback.transfer_process_id != transfer_id or callback.action != "provision" or not callback.authorized:
            continue
        body = callback.body if isinstance(callback.body, dict) else {}
        address = body.get("contentDataAddress") or body.get("dataAddress") or {}
        properties = address.get("properties", {}) if isinstance(address, dict) else {}
        if isinstance(properties, dict) and properties.get("baseUrl") and properties.get("authCode"):
            return str(properties["baseUrl"]), str(properties["authCode"]).removeprefix("Bearer ")
    return None


def write_profile(state_dir: Path, url: str, token: str, name: str = PROFILE) -> Path:
    """A consumer's `gxwf client` profile (mode 0600: it holds the consumer's token), `demo-consumer.json` for
    the demo's consumer."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps({"url": url, "token": token}, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class ConsumerRun:
    """How the demo consumer's run ended, and the result files it downloaded."""

    status: RunStatus | None
    downloaded: list[Path]
    error: str | None = None


async def run_as_consumer(
    console: Console, url: str, token: str, state_dir: Path, asset_id: str, dashboard: str | None
) -> ConsumerRun:
    route = state_dir / "demo-route.csv"
    example = SHIPPED / "routes" / "carla-loop.csv"
    route.write_text(example.read_text() if example.exists() else _ROUTE)
    console.rule("[bold]demo: the consumer uploads a route, runs the CARLA stand-in, downloads the result")
    try:
        async with WorkflowClient(url, token) as client:
            uploaded = await client.upload_file(route, "route")
            console.print(f"input {uploaded.id} uploaded ({uploaded.size} bytes, {uploaded.state})")
            accepted = await client.start_run(
                asset_id, inputs={"route": uploaded.id}, idempotency_key=f"demo-{uuid.uuid4()}"
            )
            console.print(f"run {accepted.run_id} {accepted.state}")
            if dashboard:
                console.print(f"  live on the dashboard: {dashboard}/tail?run={accepted.run_id}&since=15m")
            # Read to its end (the `end` event is the last), so the stream is closed where it was opened.
            async for event in client.follow_logs(accepted.run_id):
                if event.kind != "end":
                    for line in event.data.splitlines():
                        console.print(f"  [dim]log[/dim] {line}")
            status = await client.wait(accepted.run_id, timeout=60)
            console.print(f"run {status.id}: {status.state}" + (f" ({status.reason})" if status.reason else ""))
            downloaded: list[Path] = []
            if status.results_url is None:
                return ConsumerRun(status, downloaded)
            results = await client.results(status.id)
            target = state_dir / "demo-results" / status.id
            for item in results.files:
                saved = await client.download(status.id, item.name, target / item.name)
                downloaded.append(saved)
                console.print(f"  result {item.name} ({item.size} bytes) -> {saved}")
            return ConsumerRun(status, downloaded)
    except (ApiError, OSError, TimeoutError) as error:
        return ConsumerRun(None, [], str(error) or type(error).__name__)
