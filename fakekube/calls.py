"""A record of every API request, so tests and benchmarks can count what a client did."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

CONTROLLER_AGENT = "fakekube-controller"


@dataclass(frozen=True)
class ApiCall:
    verb: str
    resource: str  # "pods", "deployments.apps", "pods/status"
    namespace: str | None
    name: str | None
    status: int
    controller: bool  # made by the fake controller, not by the code under test


def count(calls: Iterable[ApiCall], *, controller: bool = False) -> Counter[tuple[str, str]]:
    """(verb, resource) -> number of calls, by the client under test unless `controller`."""
    return Counter((c.verb, c.resource) for c in calls if c.controller == controller)
