"""The NATS users the embedded stack makes for gxwf: one per component, with its permissions on the bus."""

from __future__ import annotations

from typing import TYPE_CHECKING

from events.permissions import COMPONENTS

if TYPE_CHECKING:
    from devstack.access import NatsUser


def nats_users() -> list[NatsUser]:
    from devstack.access import NatsUser

    return [NatsUser(name, publish=rules.publish, subscribe=rules.subscribe) for name, rules in COMPONENTS.items()]
