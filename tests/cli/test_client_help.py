"""`gxwf client ... --help` needs no configuration: no URL, no token, no profile file, no environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer
from gxwf_client.cli.commands import client_app


def command_paths(command: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group and command under `gxwf client`, as the words a user types."""
    found = [path]
    # Duck-typed: Typer's groups are not click.Group instances when Typer brings its own copy of Click.
    subcommands: dict[str, object] = getattr(command, "commands", {})
    for name, sub in sorted(subcommands.items()):
        found += command_paths(sub, (*path, name))
    return found


PATHS = command_paths(typer.main.get_command(client_app))


def test_every_client_command_is_covered() -> None:
    # A guard against the walk finding nothing (then the help test below would pass vacuously).
    assert {("run", "start"), ("logs",), ("inputs", "upload"), ("results", "download")} <= set(PATHS)


@pytest.mark.parametrize("words", PATHS, ids=lambda words: " ".join(("client", *words)))
def test_help_needs_no_configuration(words: tuple[str, ...], tmp_path: Path) -> None:
    # Nothing but PATH: no GXWF_CLIENT_*, a HOME without ~/.config/gxwf/profiles.yaml, no .env in the cwd.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gxwf", "client", *words, "--help"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"gxwf client {' '.join(words)}".strip() in result.stdout and "Usage:" in result.stdout
    assert result.stderr == ""
