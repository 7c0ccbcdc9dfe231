"""What `gxwf up --demo` drives, shared by its steps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from events.bus import Bus
from ports.assets import AssetCatalogue
from ports.store import StateStore
from schemas.connectors import EdcConnector


@dataclass(frozen=True)
class DemoSystem:
    """What the demo drives: the running handlers' bus, store and catalogue, the ingress, and the URLs."""

    nats_url: str
    bus: Bus
    store: StateStore
    assets: AssetCatalogue
    ingress_url: str
    connector: EdcConnector
    dashboard_url: str | None
    state_dir: Path
    # Where the first step's run goes: the site of the handlers `gxwf up` started first.
    site: str | None = None
