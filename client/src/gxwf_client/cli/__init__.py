"""`gxwf-client`: the consumer's command line (the server's CLI mounts the same commands as `gxwf client`).

Needs the `cli` extra (`pip install 'gaiax-workflows-client[cli]'`): Typer, Rich and PyYAML."""

from __future__ import annotations

import sys
from typing import Any

from gxwf_client.cli.errors import CommandError, usage_line

__all__ = ["CommandError", "main"]


def main(argv: list[str] | None = None) -> Any:
    """Entry point of `gxwf-client`: usage errors and bad input as one line on stderr with exit status 2."""
    try:
        import typer
        from typer.exceptions import TyperException
    except ImportError:
        print(
            "gxwf-client: the command line needs its extra: pip install 'gaiax-workflows-client[cli]'", file=sys.stderr
        )
        sys.exit(2)
    from gxwf_client.cli.commands import client_app

    try:
        return client_app(args=argv, standalone_mode=False, prog_name="gxwf-client")
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("gxwf-client: aborted", file=sys.stderr)
        sys.exit(130)
    except CommandError as error:
        print(f"gxwf-client: error: {error}", file=sys.stderr)
        sys.exit(2)
    except TyperException as error:
        print(f"gxwf-client: error: {usage_line(error)}", file=sys.stderr)
        sys.exit(2)
