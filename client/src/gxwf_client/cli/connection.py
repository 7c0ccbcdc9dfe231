"""How the client's command line reaches a WorkflowApi (URL and token from flags, env or a profile file), runs
one call, and shows JSON and progress."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from gxwf_client import ApiError, WorkflowClient
from gxwf_client.cli.errors import CommandError
from gxwf_client.client import ChecksumMismatch

err = Console(stderr=True)
T = TypeVar("T")
PROFILES_ENV = "GXWF_CLIENT_PROFILES"
JsonFlag = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


@dataclass
class Target:
    url: str
    token: str


@dataclass
class ConnectionOptions:
    """What the group's options said; resolved into a Target only by a command that calls the API, so `--help`
    and bad arguments never need a URL, a token or a profile file."""

    url: str | None = None
    token: str | None = None
    profile: str | None = None


def profiles_path() -> Path:
    configured = os.environ.get(PROFILES_ENV)
    return Path(configured) if configured else Path.home() / ".config" / "gxwf" / "profiles.yaml"


def profile(name: str) -> dict[str, Any]:
    """A profile by name from the profiles file, or a file that is one profile (`{"url": ..., "token": ...}`, as
    `gxwf up --demo` writes DIR/demo-consumer.json)."""
    single = Path(name).expanduser()
    if single.is_file():
        try:
            data = yaml.safe_load(single.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
            raise CommandError(f"--profile {name}: not a profile file ({error.__class__.__name__})") from None
        if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
            raise CommandError(f"--profile {name}: the file has no url and token")
        return data
    path = profiles_path()
    if not path.exists():
        raise CommandError(f"--profile {name}: no profile file {path} (set {PROFILES_ENV} or create it)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise CommandError(f"{path}: not YAML ({error.__class__.__name__})") from None
    profiles = data.get("profiles", data) if isinstance(data, dict) else {}
    entry = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(entry, dict):
        raise CommandError(f"--profile {name}: not in {path}; it has {', '.join(sorted(profiles)) or 'none'}")
    return entry


def resolve(options: ConnectionOptions) -> Target:
    url, token = options.url, options.token
    if options.profile is not None:
        entry = profile(options.profile)
        url = url or entry.get("url")
        token = token or entry.get("token")
    if not url:
        raise CommandError("no WorkflowApi URL: give --url, GXWF_CLIENT_URL or a --profile with url")
    if not url.startswith(("http://", "https://")):
        raise CommandError(f"--url {url!r}: give an http:// or https:// URL")
    if not token:
        raise CommandError("no token: give --token, GXWF_CLIENT_TOKEN or a --profile with token")
    return Target(str(url), str(token))


def call(options: ConnectionOptions, action: Callable[[WorkflowClient], Awaitable[T]]) -> T:
    """Run one client action; API errors and unreachable servers become one line and exit status 2."""
    target = resolve(options)

    async def main() -> T:
        async with WorkflowClient(target.url, target.token) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except ApiError as error:
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in error.errors[1:])
        raise CommandError(f"{error.status} {error.detail}" + (f" ({fields})" if fields else "")) from None
    except ChecksumMismatch as error:
        raise CommandError(f"checksum mismatch: {error}") from None
    except httpx.TransportError as error:
        raise CommandError(f"cannot reach the WorkflowApi at {target.url}: {error.__class__.__name__}") from None


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
