"""Turning the end of a server's log into one line fit for an error message."""

from __future__ import annotations

import re
from pathlib import Path

# What servers print when they give up: Go's glog (F/E + date), NATS ([FTL]/[ERR]), Python tracebacks.
_TELLING = re.compile(
    r"^[FE]\d{4} |\[(FTL|ERR)\]|error|fatal|panic|exception|in use|denied|refused|not found|no such",
    re.IGNORECASE,
)
# Stack frames repeat the cause in noise: Go goroutine dumps and Python "File ..." lines.
_FRAME = re.compile(r"^\s|^goroutine |^Traceback |^\S+\.go:\d+|^created by ")
_READ_BYTES = 16_384


def read_from(path: Path, offset: int) -> str:
    """What was appended to `path` since `offset`, at most the last 16 KiB of it."""
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            end = log.tell()
            log.seek(max(offset, end - _READ_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def summarize(text: str, *, lines: int = 3, width: int = 400) -> str:
    """The last few telling lines of `text` joined with " | ", or its last lines when none tells."""
    candidates = [" ".join(line.split()) for line in text.splitlines() if line.strip() and not _FRAME.match(line)]
    telling = [line for line in candidates if _TELLING.search(line)]
    chosen = (telling or candidates)[-lines:]
    if not chosen:
        return "(the log is empty)"
    summary = " | ".join(chosen)
    return summary if len(summary) <= width else "..." + summary[-(width - 3) :]
