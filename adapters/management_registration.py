"""A connector simulator's management API, registered in the state directory for a trial without a connector.

`gxwf edc simulate` writes the registration when it starts and removes it when it exits. The EDC client of a
system whose default connector has no management URL configured reads it on every lookup, so the handlers
ask whichever simulator runs now, whatever EDC version (management API version) it speaks.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path

import structlog
from pydantic import SecretStr, ValidationError

from schemas.connectors import EdcConnector, ManagementApi

log = structlog.get_logger("gxwf.management_registration")

FILE = "edc-simulator.json"


def registration_path(state_dir: Path) -> Path:
    return state_dir / FILE


def register(state_dir: Path, api: ManagementApi) -> Path:
    """Write the registration (mode 0600: it holds the management key), replacing any earlier one at once."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = registration_path(state_dir)
    record = {
        "management_url": api.url,
        "api_version": api.api_version,
        "api_key": api.key.get_secret_value() if api.key is not None else None,
        "api_key_header": api.key_header,
        "pid": os.getpid(),
    }
    tmp = path.with_name(f".{FILE}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def unregister(state_dir: Path, api: ManagementApi) -> None:
    """Remove the registration if it is still this one: a simulator started since keeps its own."""
    path = registration_path(state_dir)
    current = _read(path)
    if current is not None and current.url == api.url and current.key == api.key:
        path.unlink(missing_ok=True)


class RegisteredManagement:
    """The management lookup of the EDC client for one connector (the default one): the registration file
    first, then `fallback` (the demo's own simulator), read fresh on every call."""

    def __init__(self, state_dir: Path, connector_name: str, fallback: ManagementApi | None = None) -> None:
        self.path = registration_path(state_dir)
        self.connector_name = connector_name
        self.fallback = fallback

    def __call__(self, connector: EdcConnector) -> ManagementApi | None:
        if connector.name != self.connector_name:
            return None
        return _read(self.path) or self.fallback


def _read(path: Path) -> ManagementApi | None:
    try:
        status = path.lstat()
    except FileNotFoundError:
        return None
    # Whoever can write it decides where our requests go: only a plain file of ours that nobody else can read.
    if not stat.S_ISREG(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        log.warning("management registration ignored: not private to this user", path=str(path))
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict):
            raise TypeError("not an object")
        pid = record.get("pid")
        if isinstance(pid, int) and not _alive(pid):
            return None  # a simulator that was killed before it could remove it
        key = record.get("api_key")
        return ManagementApi(
            url=record["management_url"],
            api_version=record.get("api_version", "v3"),
            key=SecretStr(key) if isinstance(key, str) else None,
            key_header=record.get("api_key_header", "x-api-key"),
            registered=True,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, ValidationError) as error:
        log.warning("management registration ignored: unreadable", path=str(path), error=str(error))
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
