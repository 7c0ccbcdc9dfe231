"""Watching one started server: when it exits unasked, start it again on its ports with its data, within a budget."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from devstack.errors import StackError
from devstack.launcher import PortTaken, RunningServer
from devstack.process import describe_exit
from devstack.restarts import RestartBudget, RestartPolicy

Restart = Callable[[RunningServer], Awaitable[RunningServer]]


class GaveUp(StackError):
    """A server died and could not be brought back; the message says which and why, on one line."""


async def supervise(
    server: RunningServer,
    *,
    policy: RestartPolicy,
    restart: Restart,
    replaced: Callable[[RunningServer], None],
    say: Callable[[str], None],
    data_dir: str,
) -> None:
    """Run until cancelled; raise GaveUp once `server` (or its successor) cannot be brought back.

    `restart` starts a dead server again and returns once it is ready; `replaced` is told of each successor so
    that stopping the stack stops the live process. One line per event goes to `say`.
    """
    budget = RestartBudget(policy)
    name = server.spec.name
    where = server.url
    while True:
        returncode = await server.process.wait()
        died = time.monotonic()
        last = f"{name} (pid {server.process.pid}) {describe_exit(returncode)}: {server.process.log_summary()}"
        while True:
            delay = budget.next_delay(time.monotonic())
            if delay is None:
                raise GaveUp(
                    f"{name} could not be brought back ({policy.limit} restarts within {policy.window_seconds:g} s"
                    f" used): {last}"
                )
            say(
                f"{name} (pid {server.process.pid}) {_died(returncode)}; restarting on {where} with its data"
                f" ({data_dir}) in {delay:g} s, attempt {budget.used} of {policy.limit}"
                if budget.attempt == 1
                else f"{name}: restart attempt {budget.used} of {policy.limit} in {delay:g} s"
            )
            await asyncio.sleep(delay)
            try:
                server = await restart(server)
            except PortTaken as error:
                # Its clients know only this port: another program holding it will not go away by waiting.
                raise GaveUp(f"{name} could not be brought back: {error}") from None
            except StackError as error:
                last = str(error)
                say(f"{name}: restart failed: {last}")
                continue
            break
        replaced(server)
        budget.succeeded()
        say(f"{name} is back after {time.monotonic() - died:.1f} s (pid {server.process.pid})")


def _died(returncode: int) -> str:
    described = describe_exit(returncode)
    return described.replace("was killed by ", "died (signal ").rstrip() + ")" if returncode < 0 else described
