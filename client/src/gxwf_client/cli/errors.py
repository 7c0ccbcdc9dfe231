"""The CLI's one kind of expected failure."""

from typing import Any


def usage_line(error: Any) -> str:
    """Typer's own copy of Click's usage errors (missing or malformed arguments and options) as one line, with
    where to look: the same wording in `gxwf-client` and `gxwf`."""
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    ctx = getattr(error, "ctx", None)
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"{' '.join(message.split())}{hint}"


class CommandError(Exception):
    """Bad input or an unusable answer: printed as one line, exit status 2, never a traceback."""
