"""How a person calls gxwf again from the shell that started it, for the commands we suggest."""

from __future__ import annotations

import functools
import shlex
import shutil
import sys
from pathlib import Path


@functools.cache
def program() -> str:
    """`gxwf` when the PATH finds this installation's, else the path it was started by (`.venv/bin/gxwf` after
    `make run`, whose venv is not on the PATH): a suggested command must work when pasted. Decided once, on the
    PATH of the shell (`gxwf up` puts its own interpreter's folder first for the runs it starts)."""
    started = Path(sys.argv[0])
    if started.name != "gxwf":
        # `python -m gxwf`: the interpreter that has it installed.
        return f"{shlex.quote(sys.executable)} -m gxwf"
    found = shutil.which("gxwf")
    if found is not None and Path(found).resolve() == started.resolve():
        return "gxwf"
    return shlex.quote(sys.argv[0])
