"""serve_until_signalled: what started is stopped, last first, however serving ends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading

import pytest

from gxwf.serving import Starter, StoppedWhileStarting, serve_until_signalled

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals reach only the main thread's loop"
)


def starter(stopped: list[str], *, then: str) -> Starter:
    async def start(services: contextlib.AsyncExitStack) -> bool | None:
        for name in ("stack", "dashboard", "ingress"):

            async def stop(name: str = name) -> None:
                stopped.append(name)

            services.push_async_callback(stop)
        if then == "fail":
            raise RuntimeError("the WorkflowApi's port is taken")
        if then == "signal during start":
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(30)
        if then == "signal after start":
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
        return then != "refuse"

    return start


async def test_a_failure_midway_stops_what_had_started_in_reverse_order() -> None:
    stopped: list[str] = []
    with pytest.raises(RuntimeError, match="port is taken"):
        await serve_until_signalled(starter(stopped, then="fail"))
    assert stopped == ["ingress", "dashboard", "stack"]


async def test_a_start_that_says_no_stops_at_once_and_returns_false() -> None:
    stopped: list[str] = []
    assert await serve_until_signalled(starter(stopped, then="refuse")) is False
    assert stopped == ["ingress", "dashboard", "stack"]


async def test_a_signal_during_start_abandons_it_and_stops_what_had_started() -> None:
    stopped: list[str] = []
    async with asyncio.timeout(10):
        with pytest.raises(StoppedWhileStarting) as raised:
            await serve_until_signalled(starter(stopped, then="signal during start"))
    assert raised.value.signum == signal.SIGTERM
    assert stopped == ["ingress", "dashboard", "stack"]


async def test_a_signal_after_start_ends_serving_and_stops_everything() -> None:
    stopped: list[str] = []
    before = signal.getsignal(signal.SIGTERM)
    async with asyncio.timeout(10):
        assert await serve_until_signalled(starter(stopped, then="signal after start")) is True
    assert stopped == ["ingress", "dashboard", "stack"]
    # The handlers are gone again: whatever SIGTERM handling the process had before is back (the default, or a
    # handler an earlier server in this process left).
    assert signal.getsignal(signal.SIGTERM) == (signal.SIG_DFL if before is None else before)
