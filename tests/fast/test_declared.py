"""The in-process bus runs what the handlers declare, as the runtime does: the derived subscription table, the
declared periodic passes by name, and each under the CloudEvents source the runtime gives it."""

from __future__ import annotations

import pytest

from events import subjects as s
from events.envelope import SOURCE
from handlers.subscriptions import PERIODIC, SUBSCRIPTIONS
from inprocess.bus import SETTLE_PASSES
from inprocess.system import InProcessSystem
from tests.fast.conftest import request_run


async def test_the_bus_delivers_to_the_declared_subscriptions_and_runs_the_declared_passes(
    system: InProcessSystem,
) -> None:
    assert system.bus.subscriptions is SUBSCRIPTIONS and system.bus.passes is PERIODIC
    assert set(SETTLE_PASSES) <= {loop.name for loop in PERIODIC}
    with pytest.raises(KeyError, match="no-such-pass"):
        await system.bus.periodic("no-such-pass")


async def test_what_handlers_emit_carries_the_runtime_source_of_their_group_or_pass(system: InProcessSystem) -> None:
    await request_run(system, "r-src")
    system.compute.finish("r-src", 0)
    await system.bus.settle()

    sources = {event.type: event.source for event in system.bus.stream}
    assert sources[s.RUN_QUEUED] == f"{SOURCE}:jobs"
    assert sources[s.RUN_PENDING] == f"{SOURCE}:jobs-dispatcher"
    assert sources[s.RUN_RUNNING] == f"{SOURCE}:jobs"
    assert sources[s.RUN_SUCCEEDED] == f"{SOURCE}:jobs-watcher"
    assert sources[s.RESULT_PUBLISHED] == f"{SOURCE}:results"
    handled = {delivery.subscription.durable for delivery in system.bus.handled}
    assert {"jobs-run-requested", "jobs-start-pending", "jobs-track-succeeded", "results-run-succeeded"} <= handled
