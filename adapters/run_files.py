"""Small files a compute backend keeps beside a run's workload (its claim, the numbers it records, its log),
read and written so that a concurrent or restarted handler never sees half of one."""

from __future__ import annotations

import os
from pathlib import Path


def claim(path: Path) -> bool:
    """True for the one caller that created `path`."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)


def write_private(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    partial.replace(path)


def read_span(path: Path, start: int, limit: int, end: int | None = None) -> bytes:
    """Up to `limit` bytes of the file from `start`, not beyond `end`; nothing when it does not exist yet."""
    size = limit if end is None else min(limit, end - start)
    if size <= 0:
        return b""
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(size)
    except FileNotFoundError:
        return b""
