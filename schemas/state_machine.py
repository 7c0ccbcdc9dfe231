"""Allowed state transitions of a stored document; everything else is rejected, never applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

S = TypeVar("S", bound=StrEnum)


class TransitionRejected(Exception):
    def __init__(self, machine: str, current: str | None, target: str) -> None:
        current = None if current is None else str(current)
        super().__init__(f"{machine}: no transition from {current!r} to {str(target)!r}")
        self.machine = machine
        self.current = current
        self.target = target


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    name: str
    initial: frozenset[S]
    transitions: Mapping[S, frozenset[S]]
    terminal: frozenset[S] = field(init=False)

    def __post_init__(self) -> None:
        states = set(self.transitions) | {t for targets in self.transitions.values() for t in targets}
        object.__setattr__(self, "terminal", frozenset(s for s in states if not self.transitions.get(s)))

    # States arrive as plain strings from the store; a StrEnum member hashes and compares as its value.
    def allows(self, current: str | None, target: str) -> bool:
        if current is None:
            return target in self.initial
        return target in self.transitions.get(current, frozenset())

    def check(self, current: str | None, target: str) -> None:
        if not self.allows(current, target):
            raise TransitionRejected(self.name, current, target)

    def sources(self, target: str) -> frozenset[S]:
        return frozenset(s for s, targets in self.transitions.items() if target in targets)


def machine(name: str, initial: set[S], edges: Mapping[S, set[S]]) -> StateMachine[S]:
    return StateMachine(name, frozenset(initial), {k: frozenset(v) for k, v in edges.items()})
