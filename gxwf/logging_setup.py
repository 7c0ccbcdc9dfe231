from __future__ import annotations

import logging
import sys
from typing import Any

import structlog


class _StderrLogger:
    """Writes to whatever sys.stderr is at the time of the call, not at configuration time.

    The CLI may configure logging once and live through redirections (test capture, daemonisation);
    a logger bound to the original stream would then write to a closed file.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


class _CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stdlib side of the same rule (FastStream, uvicorn and PyMongo log through it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def _stderr_logger(*_: Any) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """structlog to stderr, so stdout stays clean for `--json` output that scripts read."""
    numeric = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(handlers=[_CurrentStderrHandler()], level=numeric, format="%(message)s")
    # Libraries that log every request or task at INFO would drown our events (and print URLs that may
    # carry credentials); at debug level they speak again.
    for noisy in ("httpx", "httpcore", "faststream", "gxwf.faststream", "botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING) if numeric > logging.DEBUG else numeric)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
