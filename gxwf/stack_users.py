"""The NATS users the embedded stack makes for gxwf (one per component, with its permissions on the bus), and
the stack a benchmark starts with them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from events.permissions import COMPONENTS

if TYPE_CHECKING:
    from devstack import EmbeddedStack
    from devstack.access import NatsUser
    from gxwf.settings import Settings


def nats_users() -> list[NatsUser]:
    from devstack.access import NatsUser

    return [NatsUser(name, publish=rules.publish, subscribe=rules.subscribe) for name, rules in COMPONENTS.items()]


def bench_stack(settings: Settings) -> EmbeddedStack:
    """The servers a benchmark runs on: those the settings name, else embedded ones of its own, in a temp dir."""
    from devstack import EmbeddedStack

    return EmbeddedStack(
        None,
        nats_url=settings.nats_url,
        mongo_url=settings.mongo_url,
        s3_endpoint=settings.s3_endpoint,
        nats_users=nats_users(),
    )
