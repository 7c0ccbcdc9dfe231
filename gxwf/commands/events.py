"""`gxwf events tail`: events and dead letters, live or replayed, filtered like the dashboard's tail."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gxwf.errors import UserError
from gxwf.settings import load_settings

events_app = typer.Typer(help="Events on the bus.", no_args_is_help=True)
StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Where servers keep data and endpoints.json (default .gxwf)."),
]


@events_app.command("tail")
def events_tail(
    subject: Annotated[
        list[str] | None,
        typer.Option("--subject", "-s", help="Subject filter, NATS wildcards allowed (repeatable)."),
    ] = None,
    consumer: Annotated[str | None, typer.Option("--consumer", help="Only events of this consumer id.")] = None,
    transfer: Annotated[str | None, typer.Option("--transfer", help="Only events of this transfer process id.")] = None,
    run: Annotated[str | None, typer.Option("--run", help="Only events of this run id.")] = None,
    grep: Annotated[str | None, typer.Option("--grep", help="Only events whose JSON contains TEXT (any case).")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Start at a stream sequence, an ISO 8601 time, or an age such as 15m."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line on stdout.")] = False,
    replay: Annotated[bool, typer.Option("--replay", help="Start from the oldest stored event.")] = False,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", min=1, help="Print N events and exit: the first N with --replay or --since, else the last N."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0.1, help="Exit after this many seconds without an event."),
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Print events live, or from a sequence or time, filtered like the dashboard's tail (payloads redacted)."""
    from events.filters import EventFilter, FilterError, parse_since
    from gxwf.endpoints import known_servers
    from gxwf.tail import TailError, json_emitter, rich_emitter, tail

    options = {"subject": "--subject", "consumer": "--consumer", "transfer": "--transfer", "run": "--run"}
    options |= {"text": "--grep", "since": "--since"}
    try:
        chosen = EventFilter.build(subject or [], consumer=consumer, transfer=transfer, run=run, text=grep)
        start = parse_since(since)
    except FilterError as error:
        raise UserError(f"{options.get(error.field, error.field)}: {error.message}") from None
    if replay and since:
        raise UserError("--replay and --since: give one (--replay is --since 1)")
    subjects = list(chosen.subjects) or ["edc.>", "wf.>", "dlq.>"]
    settings = load_settings(state_dir)
    try:
        nats_url = known_servers(settings, ("nats",))["nats"]
    except LookupError as error:
        raise UserError(str(error)) from None
    emit = json_emitter() if as_json else rich_emitter(Console())
    try:
        asyncio.run(
            tail(
                nats_url,
                subjects,
                replay=replay,
                emit=emit,
                count=count,
                timeout=timeout,
                content=chosen,
                start=start,
            )
        )
    except TailError as error:
        raise UserError(str(error)) from None
