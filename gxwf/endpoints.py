"""Where the servers are: settings first, else the `endpoints.json` that `gxwf up` or `gxwf stack up` wrote into
its state directory. Every command that needs the running system looks here, so they all say the same thing
when nothing is found: which state directory was looked at, and how to point at another."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gxwf.settings import Settings

Server = Literal["nats", "mongo", "s3"]
# The HTTP services `gxwf up` started; only it writes them.
Service = Literal["edc_ingress", "workflow_api", "dashboard"]
ENDPOINTS_FILE = "endpoints.json"
# Written by the embedded stack itself (devstack), with what endpoints.json leaves out: the NATS monitor.
STACK_FILE = "stack.json"
# Each server's setting and the variable that sets it.
_SETTINGS: dict[Server, tuple[str, str]] = {
    "nats": ("nats_url", "GXWF_NATS_URL"),
    "mongo": ("mongo_url", "GXWF_MONGO_URL"),
    "s3": ("s3_endpoint", "GXWF_S3_ENDPOINT"),
}


class ServersUnknown(LookupError):
    """Neither the settings nor the state directory name a server a command needs (one line for the CLI)."""


def absolute_state_dir(settings: Settings) -> Path:
    # Absolute in messages, because the directory `gxwf up` runs with is usually another shell's cwd.
    return settings.state_dir.expanduser().absolute()


def state_dir_hint(state_dir: Path) -> str:
    """How to reach a system that runs elsewhere, for every message about a thing not found in a state dir."""
    return (
        f"start `gxwf up` or `gxwf stack up` with state dir {state_dir}, "
        "or give the state dir a running one uses with --state-dir DIR or GXWF_STATE_DIR"
    )


def _written(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError, OSError) as error:
        raise ServersUnknown(
            f"{path}: not an endpoints file ({error.__class__.__name__}); `gxwf up` writes it anew"
        ) from None
    return data if isinstance(data, dict) else {}


def write_endpoints(state_dir: Path, values: dict[str, str | None]) -> Path:
    """What `gxwf up` and `gxwf stack up` started, for the commands run later from other shells."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / ENDPOINTS_FILE
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(values, indent=2) + "\n")
    # Renamed into place: a reader never sees half a file.
    partial.replace(path)
    return path


def endpoints_file(settings: Settings) -> Path:
    return absolute_state_dir(settings) / ENDPOINTS_FILE


def written_service(settings: Settings, name: Service) -> str | None:
    """The URL `gxwf up` wrote for one of its HTTP services, None when it wrote none (or nothing)."""
    value = _written(endpoints_file(settings)).get(name)
    return str(value) if value else None


def stack_nats_monitor(state_dir: Path) -> str | None:
    """The embedded NATS server's monitoring URL, from the stack's own file; None when unknown."""
    path = state_dir / STACK_FILE
    try:
        value = json.loads(path.read_text()).get("nats_monitor") if path.exists() else None
    except (ValueError, UnicodeDecodeError, OSError, AttributeError):
        return None
    return str(value) if value else None


def known_servers(settings: Settings, needed: Sequence[Server]) -> dict[Server, str]:
    """The URL of each needed server, or ServersUnknown naming the state directory looked at."""
    state_dir = absolute_state_dir(settings)
    path = endpoints_file(settings)
    written = _written(path)
    found: dict[Server, str] = {}
    for name in needed:
        value = getattr(settings, _SETTINGS[name][0]) or written.get(name)
        if value:
            found[name] = str(value)
    missing = [name for name in needed if name not in found]
    if missing:
        why = f"{path} names no {', '.join(missing)}" if path.exists() else f"looked for {path}"
        variables = ", ".join(_SETTINGS[name][1] for name in missing)
        raise ServersUnknown(
            f"no {', '.join(missing)} server known ({why}): {state_dir_hint(state_dir)}, or set {variables}"
        )
    return found


@dataclass(frozen=True)
class Endpoints:
    nats: str
    mongo: str
    s3: str

    @classmethod
    def resolve(cls, settings: Settings) -> Endpoints:
        """Settings first; otherwise what `gxwf up` or `gxwf stack up` wrote into the state directory."""
        found = known_servers(settings, ("nats", "mongo", "s3"))
        return cls(found["nats"], found["mongo"], found["s3"])
