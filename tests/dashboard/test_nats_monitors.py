"""The dashboard's NATS panel with a cluster's monitors: the first that answers speaks for the cluster, so a dead
first node does not hide the figures."""

from __future__ import annotations

from typing import Any

import nats

from dashboard.health import nats_health
from devstack.netports import reserve_ports


async def test_a_dead_first_monitor_gives_way_to_the_next(stack: Any) -> None:
    (dead,) = reserve_ports(1)
    nc = await nats.connect(stack.nats)
    try:
        health = await nats_health(nc, f"http://127.0.0.1:{dead},{stack.nats_monitor}")
        alone = await nats_health(nc, f"http://127.0.0.1:{dead}")
    finally:
        await nc.close()
    assert health.ok
    assert health.facts["version"] and "monitor" not in health.facts
    assert health.facts["connections"] >= 1
    assert alone.facts["monitor"].startswith("unreachable")
