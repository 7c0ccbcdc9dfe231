"""`gxwf asyncapi`: the AsyncAPI 3.0 document of every subject, generated from the code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gxwf.errors import UserError


def asyncapi(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if OUTPUT differs from the code.")] = False,
) -> None:
    """Generate the AsyncAPI 3.0 document of every subject from the FastStream app."""
    from gxwf.asyncapi_doc import render_yaml

    text = render_yaml()
    if check:
        if output is None:
            raise UserError("--check needs --output FILE to compare with")
        if not output.exists() or output.read_text() != text:
            Console(stderr=True).print(f"{output} is out of date: run `gxwf asyncapi -o {output}`")
            raise typer.Exit(1)
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
