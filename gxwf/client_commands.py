"""`gxwf client ...`: the consumer's side of the WorkflowApi from a terminal (URL and token from flags, env or a
profile file), built on gxwf_client."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
import yaml
from gxwf_client import ApiError, WorkflowClient
from gxwf_client.client import ChecksumMismatch, end_state
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from gxwf.errors import UserError

client_app = typer.Typer(
    help="Use a WorkflowApi as a consumer: assets, inputs, runs, logs, results.", no_args_is_help=True
)
assets_cmd = typer.Typer(help="The assets offered to you.", no_args_is_help=True)
inputs_cmd = typer.Typer(help="Your uploaded inputs.", no_args_is_help=True)
run_cmd = typer.Typer(help="Start, stop and watch runs.", no_args_is_help=True)
results_cmd = typer.Typer(help="A run's result files.", no_args_is_help=True)
client_app.add_typer(assets_cmd, name="assets")
client_app.add_typer(inputs_cmd, name="inputs")
client_app.add_typer(run_cmd, name="run")
client_app.add_typer(results_cmd, name="results")

err = Console(stderr=True)
out = Console()
T = TypeVar("T")
PROFILES_ENV = "GXWF_CLIENT_PROFILES"


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


_options = ConnectionOptions()


def _profiles_path() -> Path:
    configured = os.environ.get(PROFILES_ENV)
    return Path(configured) if configured else Path.home() / ".config" / "gxwf" / "profiles.yaml"


def _profile(name: str) -> dict[str, Any]:
    """A profile by name from the profiles file, or a file that is one profile (`{"url": ..., "token": ...}`, as
    `gxwf up --demo` writes DIR/demo-consumer.json)."""
    single = Path(name).expanduser()
    if single.is_file():
        try:
            data = yaml.safe_load(single.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as error:
            raise UserError(f"--profile {name}: not a profile file ({error.__class__.__name__})") from None
        if not isinstance(data, dict) or not data.get("url") or not data.get("token"):
            raise UserError(f"--profile {name}: the file has no url and token")
        return data
    path = _profiles_path()
    if not path.exists():
        raise UserError(f"--profile {name}: no profile file {path} (set {PROFILES_ENV} or create it)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not YAML ({error.__class__.__name__})") from None
    profiles = data.get("profiles", data) if isinstance(data, dict) else {}
    entry = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(entry, dict):
        raise UserError(f"--profile {name}: not in {path}; it has {', '.join(sorted(profiles)) or 'none'}")
    return entry


@client_app.callback()
def _connection(
    url: Annotated[str | None, typer.Option("--url", envvar="GXWF_CLIENT_URL", help="The WorkflowApi's URL.")] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="GXWF_CLIENT_TOKEN", help="Your bearer token.", show_default=False)
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            envvar="GXWF_CLIENT_PROFILE",
            help=f"url and token from this profile ({PROFILES_ENV}), or from a file of one profile.",
        ),
    ] = None,
) -> None:
    global _options
    _options = ConnectionOptions(url, token, profile)


def _resolve(options: ConnectionOptions) -> Target:
    url, token = options.url, options.token
    if options.profile is not None:
        entry = _profile(options.profile)
        url = url or entry.get("url")
        token = token or entry.get("token")
    if not url:
        raise UserError("no WorkflowApi URL: give --url, GXWF_CLIENT_URL or a --profile with url")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"--url {url!r}: give an http:// or https:// URL")
    if not token:
        raise UserError("no token: give --token, GXWF_CLIENT_TOKEN or a --profile with token")
    return Target(str(url), str(token))


def _call(action: Callable[[WorkflowClient], Awaitable[T]]) -> T:
    """Run one client action; API errors and unreachable servers become one line and exit status 2."""
    target = _resolve(_options)

    async def main() -> T:
        async with WorkflowClient(target.url, target.token) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except ApiError as error:
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in error.errors[1:])
        raise UserError(f"{error.status} {error.detail}" + (f" ({fields})" if fields else "")) from None
    except ChecksumMismatch as error:
        raise UserError(f"checksum mismatch: {error}") from None
    except httpx.TransportError as error:
        raise UserError(f"cannot reach the WorkflowApi at {target.url}: {error.__class__.__name__}") from None


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@contextmanager
def _progress(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
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


JsonFlag = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


# -- assets --------------------------------------------------------------------------------------------------------


@assets_cmd.command("list")
def assets_list(as_json: JsonFlag = False) -> None:
    """The asset versions you may run."""
    found = _call(lambda c: c.assets())
    if as_json:
        _print_json([a.model_dump(mode="json") for a in found])
        return
    table = Table("id", "version", "title", "cpu", "memory", "gpu")
    for a in found:
        table.add_row(a.id, str(a.version), a.title, f"{a.cpu:g}", a.memory, str(a.gpu))
    out.print(table)


@assets_cmd.command("show")
def assets_show(
    asset_id: Annotated[str, typer.Argument(help="Asset id.")],
    version: Annotated[int | None, typer.Option("--version", min=1, help="Default: the newest offered.")] = None,
) -> None:
    """An asset's inputs, parameters (JSON Schema) and outputs, as JSON."""
    detail = _call(lambda c: c.asset(asset_id, version))
    _print_json(detail.model_dump(mode="json"))


# -- inputs --------------------------------------------------------------------------------------------------------


@inputs_cmd.command("upload")
def inputs_upload(
    path: Annotated[Path, typer.Argument(help="A file, or a directory (sent as a tar archive).")],
    name: Annotated[str | None, typer.Option("--name", help="The input's name (default: the file's name).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Upload a file or directory with a progress bar; the API checks its sha256. Prints the input id."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    input_name = name or path.name
    size = path.stat().st_size if path.is_file() else None
    is_dir = path.is_dir()

    async def action(client: WorkflowClient) -> Any:
        with _progress(f"upload {path.name}", size) as advance:
            if is_dir:
                return await client.upload_directory(path, input_name, progress=advance)
            return await client.upload_file(path, input_name, progress=advance)

    uploaded = _call(action)
    if as_json:
        _print_json(uploaded.model_dump(mode="json"))
    else:
        print(uploaded.id)


@inputs_cmd.command("list")
def inputs_list(as_json: JsonFlag = False) -> None:
    """Your inputs, newest first."""
    found = _call(lambda c: c.inputs())
    if as_json:
        _print_json([i.model_dump(mode="json") for i in found])
        return
    table = Table("id", "name", "kind", "state", "size", "files", "created")
    for i in found:
        table.add_row(i.id, i.name, i.kind, i.state, str(i.size), str(i.file_count), i.created_at.isoformat())
    out.print(table)


@inputs_cmd.command("delete")
def inputs_delete(input_id: Annotated[str, typer.Argument(help="Input id.")]) -> None:
    """Delete an input and its data."""
    _call(lambda c: c.delete_input(input_id))


# -- runs ----------------------------------------------------------------------------------------------------------


def _parse_pairs(values: list[str], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r}: write NAME=VALUE")
        pairs[key] = value
    return pairs


def _coerce(schema: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    """Parameter values typed by the asset's schema, so `--param EPISODES=3` sends the integer 3."""
    properties = schema.get("properties", {})
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        kind = properties.get(key, {}).get("type", "string")
        try:
            if kind == "integer":
                typed[key] = int(value)
            elif kind == "number":
                typed[key] = float(value)
            elif kind == "boolean":
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                typed[key] = value.lower() in ("true", "1", "yes")
            else:
                typed[key] = value
        except ValueError:
            raise UserError(f"--param {key}={value}: {key} takes a {kind}") from None
    return typed


@run_cmd.command("start")
def run_start(
    asset_id: Annotated[str, typer.Argument(help="Asset id.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="NAME=VALUE (repeatable).")] = None,
    input_: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="NAME=INPUT_ID, or NAME=@PATH to upload PATH first (repeatable)."),
    ] = None,
    version: Annotated[int | None, typer.Option("--version", min=1, help="Default: the newest offered.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="A retried start with this key returns the same run.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Stream the log; exit 0 only if the run succeeds.")
    ] = False,
) -> None:
    """Start a run and print its id; with --follow stream its log and exit with its result (0 succeeded, 1 not)."""
    raw_params = _parse_pairs(param or [], "--param")
    raw_inputs = _parse_pairs(input_ or [], "--input")
    uploads: dict[str, tuple[Path, bool, int | None]] = {}
    for name, value in raw_inputs.items():
        if value.startswith("@"):
            path = Path(value[1:])
            if not path.exists():
                raise UserError(f"--input {name}={value}: no such file or directory")
            uploads[name] = (path, path.is_dir(), path.stat().st_size if path.is_file() else None)

    async def action(client: WorkflowClient) -> tuple[str, str | None]:
        detail = await client.asset(asset_id, version)
        inputs: dict[str, str] = {}
        for name, value in raw_inputs.items():
            if name in uploads:
                path, is_dir, size = uploads[name]
                with _progress(f"upload {path.name}", size) as advance:
                    uploaded = (
                        await client.upload_directory(path, name, progress=advance)
                        if is_dir
                        else await client.upload_file(path, name, progress=advance)
                    )
                inputs[name] = uploaded.id
            else:
                inputs[name] = value
        accepted = await client.start_run(
            asset_id,
            parameters=_coerce(detail.parameters, raw_params),
            inputs=inputs,
            version=detail.version,
            idempotency_key=idempotency_key,
        )
        if not follow:
            return accepted.run_id, None
        err.print(f"run {accepted.run_id}")
        return accepted.run_id, await _stream_log(client, accepted.run_id)

    run_id, state = _call(action)
    if not follow:
        print(run_id)
        return
    err.print(f"run {run_id} {state}")
    raise typer.Exit(0 if state == "succeeded" else 1)


async def _stream_log(client: WorkflowClient, run_id: str) -> str | None:
    async with aclosing(client.follow_logs(run_id)) as events:
        async for event in events:
            if event.kind == "log":
                sys.stdout.write(event.data + "\n")
                sys.stdout.flush()
            elif event.kind == "end":
                return str(end_state(event).get("state"))
    return None


@run_cmd.command("stop")
def run_stop(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Ask for the run to be stopped (a finished run says how it ended)."""
    accepted = _call(lambda c: c.stop_run(run_id))
    print(f"{accepted.run_id}: {accepted.message or 'stop requested'} (was {accepted.state})")


@run_cmd.command("status")
def run_status(run_id: Annotated[str, typer.Argument(help="Run id.")], as_json: JsonFlag = False) -> None:
    """The run's state and timeline."""
    status = _call(lambda c: c.run(run_id))
    if as_json:
        _print_json(status.model_dump(mode="json"))
        return
    out.print(f"[bold]{status.id}[/bold] {status.asset_id}@{status.asset_version}: {status.state}")
    if status.reason:
        out.print(f"  reason: {status.reason}")
    for entry in status.timeline:
        out.print(f"  {entry.at.isoformat()}  {entry.state}" + (f"  ({entry.reason})" if entry.reason else ""))


@run_cmd.command("list")
def run_list(
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state.")] = None,
    asset: Annotated[str | None, typer.Option("--asset", help="Only runs of this asset.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only runs created since (ISO 8601 with zone).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Your runs, newest first."""
    when = None
    if since is not None:
        try:
            when = datetime.fromisoformat(since)
        except ValueError:
            raise UserError(f"--since {since!r}: give an ISO 8601 time such as 2026-12-01T12:00:00+00:00") from None
    found = _call(lambda c: c.runs(state=state, asset=asset, since=when))
    if as_json:
        _print_json([r.model_dump(mode="json") for r in found])
        return
    table = Table("id", "asset", "state", "created")
    for r in found:
        table.add_row(r.id, f"{r.asset_id}@{r.asset_version}", r.state, r.created_at.isoformat())
    out.print(table)


@client_app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")] = False,
) -> None:
    """The run's log (live while it runs, archived after)."""
    if follow:
        state = _call(lambda c: _stream_log(c, run_id))
        err.print(f"run {run_id} {state}")
        return
    sys.stdout.write(_call(lambda c: c.logs(run_id)))


# -- results -------------------------------------------------------------------------------------------------------


@results_cmd.command("list")
def results_list(run_id: Annotated[str, typer.Argument(help="Run id.")], as_json: JsonFlag = False) -> None:
    """The run's result files with sizes and sha256."""
    found = _call(lambda c: c.results(run_id))
    if as_json:
        _print_json(found.model_dump(mode="json"))
        return
    table = Table("name", "size", "sha256")
    for f in found.files:
        table.add_row(f.name, str(f.size), f.sha256 or "")
    out.print(table)


def _inside(dest: Path, name: str) -> Path:
    target = (dest / name).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise UserError(f"result file {name!r} would land outside {dest}")
    return target


@results_cmd.command("download")
def results_download(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    name: Annotated[list[str] | None, typer.Argument(help="Files to fetch (default: all).")] = None,
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Directory to write into.")] = Path("."),
    archive: Annotated[bool, typer.Option("--archive", help="One zip of every file and the log instead.")] = False,
) -> None:
    """Download result files with a progress bar, each checked against its sha256."""

    async def action(client: WorkflowClient) -> list[Path]:
        if archive:
            target = dest / f"{run_id}-results.zip"
            with _progress(target.name, None) as advance:
                return [await client.download_archive(run_id, target, progress=advance)]
        listed = (await client.results(run_id)).files
        wanted = [f for f in listed if not name or f.name in name]
        missing = sorted(set(name or ()) - {f.name for f in listed})
        if missing:
            raise UserError(f"run {run_id} has no result file {missing[0]}")
        written = []
        for f in wanted:
            target = _inside(dest, f.name)
            with _progress(f.name, f.size) as advance:
                written.append(await client.download(run_id, f.name, target, progress=advance, sha256=f.sha256))
        return written

    for path in _call(action):
        print(path)
