"""Allowed state transitions of a stored document; everything else is rejected, never applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


class TransitionRejected(Exception):
    def __init__(self, machine: str, current: str | None, target: str) -> None:
        current = None if current is None else str(current)
        super().__init__(f"{machine}: no transition from {current!r} to {str(target)!r}")
        self.machine = machine
        self.current = current
        self.target = target


@dataclass(frozen=True)
class StateMachine:
    """States are plain strings as stored; the StrEnum members that declare them compare equal to them."""

    name: str
    initial: frozenset[str]
    transitions: Mapping[str, frozenset[str]]
    terminal: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        states = set(self.transitions) | {t for targets in self.transitions.values() for t in targets}
        object.__setattr__(self, "terminal", frozenset(s for s in states if not self.transitions.get(s)))

    def allows(self, current: str | None, target: str) -> bool:
        if current is None:
            return target in self.initial
        return target in self.transitions.get(current, frozenset())

    def check(self, current: str | None, target: str) -> None:
        if not self.allows(current, target):
            raise TransitionRejected(self.name, current, target)

    def sources(self, target: str) -> frozenset[str]:
        return frozenset(s for s, targets in self.transitions.items() if target in targets)


def machine(name: str, initial: set[str], edges: Mapping[str, set[str]]) -> StateMachine:
    return StateMachine(name, frozenset(initial), {k: frozenset(v) for k, v in edges.items()})
