"""An event whose handler failed only because a server was away is retried in place until the server is back,
without spending one of its bounded deliveries; any other failure goes to the bus's redelivery as before."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError
from structlog.testing import capture_logs

from adapters.unreachable import server_unreachable
from events import outages
from events.outages import ServerOutages


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outages, "_WAITS", (0.0,))


class Flaky:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)


async def test_a_handler_meeting_an_outage_is_called_again_until_it_works_and_says_so_once() -> None:
    waiting = ServerOutages(server_unreachable, patience=60)
    first = Flaky(nats.errors.TimeoutError(), ServerSelectionTimeoutError("no server"), ConnectionRefusedError())
    second = Flaky(AutoReconnect("connection reset"))
    with capture_logs() as logs:
        await asyncio.gather(waiting.wait_out(first, "jobs"), waiting.wait_out(second, "results"))
    assert (first.calls, second.calls) == (4, 2)
    said = [(entry["log_level"], entry["event"]) for entry in logs]
    assert said == [
        ("warning", "a server is unreachable; handlers retry their events until it is back"),
        ("info", "handlers reach their servers again"),
    ]


async def test_any_other_failure_is_the_bus_s_to_retry() -> None:
    waiting = ServerOutages(server_unreachable, patience=60)
    broken = Flaky(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        await waiting.wait_out(broken, "jobs")
    assert broken.calls == 1


async def test_an_outage_longer_than_the_patience_counts_as_a_failure() -> None:
    waiting = ServerOutages(server_unreachable, patience=0.0)
    away = Flaky(*(ConnectionRefusedError() for _ in range(100)))
    with pytest.raises(ConnectionRefusedError):
        await waiting.wait_out(away, "jobs")
    assert away.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        AutoReconnect("reset"),
        ServerSelectionTimeoutError("none"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ClientError(
            {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject"
        ),
        nats.errors.TimeoutError(),
        nats.errors.NoRespondersError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_of_a_server_away(error: BaseException) -> None:
    assert server_unreachable(error)
    # Also when an adapter raised its own error from it.
    wrapped = RuntimeError("the store failed")
    wrapped.__cause__ = error
    assert server_unreachable(wrapped)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad input"),
        DuplicateKeyError("dup"),
        ClientError({"Error": {"Code": "NoSuchKey"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "GetObject"),
        TimeoutError(),
        OSError("s3://bucket/key: stored 1 bytes of 2"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_errors_a_retry_in_place_would_not_fix(error: BaseException) -> None:
    assert not server_unreachable(error)
