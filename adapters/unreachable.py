"""Whether an error only says that a server (NATS, the MongoDB-wire store, S3) could not be reached just then.

Such an error is fixed by waiting until the server is back, not by the handler: the bus retries the event in
place for it instead of spending one of the event's bounded deliveries (events.delivery.DeliveryPolicy)."""

from __future__ import annotations

from typing import Final

import nats.errors
import nats.js.errors
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pymongo.errors import ConnectionFailure, WaitQueueTimeoutError

_UNREACHABLE: Final = (
    # Refused, reset, aborted: a server that is down or restarting.
    ConnectionError,
    # PyMongo: AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError (no server answered in time).
    ConnectionFailure,
    WaitQueueTimeoutError,
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    # A JetStream publish or request while the connection is down or JetStream is not ready again.
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.UnexpectedEOF,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
)
# S3 answers these while its volume server or filer is still coming up.
_S3_NOT_READY: Final = frozenset({"ServiceUnavailable", "SlowDown", "InternalError", "RequestTimeout", "503", "500"})
_CHAIN_DEPTH: Final = 8


def server_unreachable(error: BaseException) -> bool:
    """`error`, or what it was raised from, is a server away or not ready yet."""
    seen: BaseException | None = error
    for _ in range(_CHAIN_DEPTH):
        if seen is None:
            return False
        if isinstance(seen, _UNREACHABLE):
            return True
        if isinstance(seen, ClientError) and _s3_not_ready(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _s3_not_ready(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _S3_NOT_READY or status >= 500
