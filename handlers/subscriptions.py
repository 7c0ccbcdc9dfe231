"""Which handler reacts to which subject, and which periodic passes run: read from the declarations.

Every handler module is imported here, once, so that its `@on`/`@every` declarations are registered; the
composition root turns each subscription into a durable subscriber and each periodic pass into a loop.
"""

from __future__ import annotations

import importlib
import pkgutil

import handlers
from handlers.declare import HandlerFn, Periodic, Subscription, periodic, subscriptions

__all__ = ["GROUPS", "PERIODIC", "SUBSCRIPTIONS", "HandlerFn", "Periodic", "Subscription", "for_groups"]


def _import_handler_modules() -> None:
    # Walked rather than listed, so a new handler module cannot be forgotten here.
    for module in pkgutil.walk_packages(handlers.__path__, "handlers."):
        importlib.import_module(module.name)


_import_handler_modules()

# The order `gxwf handlers run --only` lists them in: the order of the flow.
GROUPS: tuple[str, ...] = ("provisioning", "deployment", "assets", "jobs", "results")
if {sub.group for sub in subscriptions()} | {loop.group for loop in periodic()} != set(GROUPS):
    raise RuntimeError("a handler package is missing from GROUPS, or GROUPS names one that declares nothing")

# In the order of the flow, then of declaration within a group: where one event reaches several subscriptions
# (a run's end: its tracker, then its results), an in-process delivery takes them in that order.
SUBSCRIPTIONS: tuple[Subscription, ...] = tuple(sorted(subscriptions(), key=lambda sub: GROUPS.index(sub.group)))
PERIODIC: tuple[Periodic, ...] = tuple(sorted(periodic(), key=lambda loop: GROUPS.index(loop.group)))


def for_groups(groups: set[str] | None) -> list[Subscription]:
    return [sub for sub in SUBSCRIPTIONS if groups is None or sub.group in groups]


def periodic_for_groups(groups: set[str] | None) -> list[Periodic]:
    return [loop for loop in PERIODIC if groups is None or loop.group in groups]
