"""Where the servers are: settings first, else the `endpoints.json` that `gxwf up` or `gxwf stack up` wrote into
its state directory. Every command that needs the running system looks here, so they all say the same thing
when nothing is found: which state directory was looked at, and how to point at another."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gxwf.settings import Settings

if TYPE_CHECKING:
    from adapters.servers import Servers

Server = Literal["nats", "mongo", "s3"]
# The HTTP services `gxwf up` started; only it writes them.
Service = Literal["edc_ingress", "workflow_api", "dashboard"]
ENDPOINTS_FILE = "endpoints.json"
# Written by the embedded stack itself (devstack), with what endpoints.json leaves out: the NATS monitor.
STACK_FILE = "stack.json"
# The embedded stack's generated secrets (devstack.credentials), for the messages that say where they are.
CREDENTIALS_FILE = "credentials.json"
# The components whose NATS user `gxwf up` writes into endpoints.json (events.permissions.COMPONENTS).
Component = Literal["handlers", "edc_ingress", "workflow_api", "dashboard", "tenant_gateway"]
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


def write_endpoints(state_dir: Path, values: dict[str, Any]) -> Path:
    """What `gxwf up` and `gxwf stack up` started, for the commands run later from other shells.

    Mode 0600 from its first byte: its URLs carry passwords and it holds the S3 keys."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / ENDPOINTS_FILE
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR), "w") as out:
        out.write(json.dumps(values, indent=2) + "\n")
    # Renamed into place: a reader never sees half a file.
    partial.replace(path)
    return path


def stack_values(eps: Any) -> dict[str, Any]:
    """What endpoints.json keeps of a started stack (a devstack.StackEndpoints): the servers' URLs with the
    credentials the scheme allows, each component's NATS URL, and the S3 keys."""
    keys = eps.s3_credentials
    return {
        "nats": eps.nats,
        "nats_users": {name: url for name, url in eps.nats_users.items() if name != "admin"},
        "mongo": eps.mongo,
        "s3": eps.s3,
        "s3_credentials": {"access_key": keys.access_key, "secret_key": keys.secret_key} if keys else None,
    }


def endpoints_file(settings: Settings) -> Path:
    return absolute_state_dir(settings) / ENDPOINTS_FILE


def written_service(settings: Settings, name: Service) -> str | None:
    """The URL `gxwf up` wrote for one of its HTTP services, None when it wrote none (or nothing)."""
    value = _written(endpoints_file(settings)).get(name)
    return str(value) if value else None


def stack_nats_monitor(state_dir: Path) -> str | None:
    """The embedded NATS servers' monitoring URLs (comma-separated, one per node), from the stack's own file; None
    when unknown."""
    path = state_dir / STACK_FILE
    try:
        written = json.loads(path.read_text()) if path.exists() else {}
        value = ",".join(written.get("nats_monitors") or []) or written.get("nats_monitor")
    except (ValueError, UnicodeDecodeError, OSError, AttributeError, TypeError):
        return None
    return str(value) if value else None


def known_servers(
    settings: Settings, needed: Sequence[Server], component: Component | None = None
) -> dict[Server, str]:
    """The URL of each needed server, or ServersUnknown naming the state directory looked at. For NATS,
    `component`'s own user when the file names one (the unrestricted URL otherwise: the operator's commands)."""
    state_dir = absolute_state_dir(settings)
    path = endpoints_file(settings)
    written = _written(path)
    found: dict[Server, str] = {}
    for name in needed:
        value = getattr(settings, _SETTINGS[name][0]) or _written_url(written, name, component)
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


def _written_url(written: dict[str, Any], name: Server, component: Component | None) -> str | None:
    users = written.get("nats_users")
    if name == "nats" and component is not None and isinstance(users, dict) and users.get(component):
        return str(users[component])
    value = written.get(name)
    return str(value) if value else None


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str


def s3_credentials(settings: Settings) -> S3Credentials | None:
    """GXWF_S3_ACCESS_KEY/GXWF_S3_SECRET_KEY when set; else the keys `gxwf up` wrote for the embedded S3 (only
    when the S3 endpoint is the embedded one); else None, and the S3 client looks in its usual places."""
    if settings.s3_access_key and settings.s3_secret_key is not None:
        return S3Credentials(settings.s3_access_key, settings.s3_secret_key.get_secret_value())
    written = _written(endpoints_file(settings))
    keys = written.get("s3_credentials")
    same_server = settings.s3_endpoint is None or settings.s3_endpoint == written.get("s3")
    if same_server and isinstance(keys, dict) and keys.get("access_key") and keys.get("secret_key"):
        return S3Credentials(str(keys["access_key"]), str(keys["secret_key"]))
    return None


@dataclass(frozen=True)
class Endpoints:
    nats: str
    mongo: str
    s3: str
    s3_credentials: S3Credentials | None = None
    # Each component's NATS URL, when the servers were started here with a user per component.
    nats_users: Mapping[str, str] = field(default_factory=dict)

    def as_component(self, component: Component) -> Endpoints:
        """The same servers with `component`'s own NATS user, where there is one."""
        return replace(self, nats=self.nats_users.get(component, self.nats))

    @property
    def s3_access_key(self) -> str | None:
        return self.s3_credentials.access_key if self.s3_credentials else None

    @property
    def s3_secret_key(self) -> str | None:
        return self.s3_credentials.secret_key if self.s3_credentials else None

    @classmethod
    def resolve(cls, settings: Settings, component: Component | None = None) -> Endpoints:
        """Settings first; otherwise what `gxwf up` or `gxwf stack up` wrote into the state directory, with
        `component`'s own NATS user where it wrote one."""
        found = known_servers(settings, ("nats", "mongo", "s3"), component)
        users = _written(endpoints_file(settings)).get("nats_users") if settings.nats_url is None else None
        known = {str(name): str(url) for name, url in users.items()} if isinstance(users, dict) else {}
        return cls(found["nats"], found["mongo"], found["s3"], s3_credentials(settings), known)

    @classmethod
    def of_stack(cls, eps: Any, component: Component | None = None) -> Endpoints:
        """The servers of a stack this process started (a devstack.StackEndpoints), as `component` uses them."""
        keys = eps.s3_credentials
        users = {name: url for name, url in eps.nats_users.items() if name != "admin"}
        nats = users.get(component, eps.nats) if component is not None else eps.nats
        return cls(nats, eps.mongo, eps.s3, S3Credentials(keys.access_key, keys.secret_key) if keys else None, users)

    def servers(self, settings: Settings) -> Servers:
        """What a service connects to: these servers, with the database, bucket and region of `settings`."""
        from adapters.servers import Servers

        return Servers(
            nats=self.nats,
            mongo=self.mongo,
            mongo_database=settings.mongo_database,
            s3=self.s3,
            s3_bucket=settings.s3_bucket,
            s3_access_key=self.s3_access_key,
            s3_secret_key=self.s3_secret_key,
            s3_region=settings.s3_region,
        )

    def with_s3(self, settings: Settings) -> Endpoints:
        """GXWF_S3_ACCESS_KEY/GXWF_S3_SECRET_KEY for an S3 the stack did not start (it has no keys of its own)."""
        if self.s3_credentials is None and settings.s3_access_key and settings.s3_secret_key is not None:
            keys = S3Credentials(settings.s3_access_key, settings.s3_secret_key.get_secret_value())
            return replace(self, s3_credentials=keys)
        return self
