"""NATS clients that outlive a restart of their server: they reconnect for ever, with a bounded wait between
attempts, and say so in one warning line per outage instead of an error (with its exception) per attempt."""

from __future__ import annotations

import logging
from typing import Any, Final

import nats.errors
import structlog

log = structlog.get_logger("gxwf.nats")

# Between two attempts to reach a server that went away: short, as the embedded one is back within a second or
# two, and each attempt is one cheap TCP connect.
RECONNECT_WAIT_SECONDS: Final = 1.0

# What a client sees of a server that went away or is not back yet: the outage itself, already said.
_OUTAGE = (
    OSError,
    TimeoutError,
    nats.errors.UnexpectedEOF,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
)


def reconnecting(component: str) -> dict[str, Any]:
    """Options for `nats.connect` and `NatsBroker`: reconnect for ever, every RECONNECT_WAIT_SECONDS; one warning
    when the connection is lost and one info line when it is back. Other errors (a permission refused) are
    logged as they come."""
    down = False

    async def error_cb(error: Exception) -> None:
        nonlocal down
        if isinstance(error, _OUTAGE):
            if not down:
                down = True
                log.warning("nats connection lost; reconnecting", component=component, error=repr(error))
            return
        log.warning("nats error", component=component, error=repr(error))

    async def reconnected_cb() -> None:
        nonlocal down
        if down:
            down = False
            log.info("nats connection back", component=component)

    return {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": RECONNECT_WAIT_SECONDS,
        "error_cb": error_cb,
        "reconnected_cb": reconnected_cb,
    }


class _WithoutBrokenConnection(logging.Filter):
    """FastStream logs every broken connection at WARNING with the exception; `reconnecting` says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Connection broken with")


_FILTER: Final = _WithoutBrokenConnection()


def quiet_broken_connections(logger: logging.Logger) -> None:
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
