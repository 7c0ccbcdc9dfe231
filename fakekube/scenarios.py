"""What a pod's containers do under the fake kubelet, chosen by annotations or by a test's plan.

Annotations (on a Job's or Deployment's pod template, or on a bare pod)::

    fakekube.io/scenario: succeed | fail:3 | oomkill | evict | image-pull-backoff | unschedulable
                          | node-lost | node-lost:unknown | hang | crashloop | not-ready
                          (comma-separated: one per attempt, the last repeats: "oomkill,succeed")
    fakekube.io/duration: 0.5         seconds Running before the outcome
    fakekube.io/pending: 0.1          seconds in ContainerCreating
    fakekube.io/log: "line1\\nline2"   what the containers print while running
    fakekube.io/terminate-after: 2    seconds a container takes to stop when its pod is deleted ("never")

A test that cannot annotate (the code under test writes the Job) adds a plan instead:
`kube.controller.plan("oomkill,succeed", labels={"run": "r1"})`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

PREFIX = "fakekube.io/"
SCENARIO = PREFIX + "scenario"
DURATION = PREFIX + "duration"
PENDING = PREFIX + "pending"
LOG = PREFIX + "log"
TERMINATE_AFTER = PREFIX + "terminate-after"
ATTEMPT = PREFIX + "attempt"

OUTCOMES = frozenset({
    "succeed", "fail", "oomkill", "evict", "image-pull-backoff", "unschedulable",
    "node-lost", "hang", "crashloop", "not-ready",
})  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    outcome: str = "succeed"
    exit_code: int = 0
    variant: str = ""  # "unknown" for node-lost: the pod stays, phase Unknown
    duration: float | None = None  # None: the controller's default
    pending: float | None = None
    log: str = ""
    terminate_after: float = 0.0

    @classmethod
    def parse(cls, text: str) -> Scenario:
        outcome, _, arg = text.strip().partition(":")
        outcome = outcome.strip()
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown scenario {text!r}; one of {sorted(OUTCOMES)}")
        if outcome == "fail":
            return cls(outcome, exit_code=int(arg or 1))
        if outcome == "node-lost" and arg:
            return cls(outcome, variant=arg.strip())
        return cls(outcome)


def parse_sequence(text: str) -> list[Scenario]:
    return [Scenario.parse(part) for part in text.split(",") if part.strip()]


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if str(value).strip() == "never":
        return math.inf
    return float(value)


def tuned(scenario: Scenario, annotations: Mapping[str, str]) -> Scenario:
    """The scenario with the timing and log annotations applied."""
    changes: dict[str, Any] = {}
    for key, attr in ((DURATION, "duration"), (PENDING, "pending"), (TERMINATE_AFTER, "terminate_after")):
        value = _seconds(annotations.get(key))
        if value is not None:
            changes[attr] = value
    if LOG in annotations:
        changes["log"] = annotations[LOG]
    return replace(scenario, **changes) if changes else scenario


def from_annotations(annotations: Mapping[str, str]) -> Scenario | None:
    """The scenario the pod's own annotation names for its attempt (untuned), or None."""
    text = annotations.get(SCENARIO)
    if not text:
        return None
    sequence = parse_sequence(text)
    attempt = int(annotations.get(ATTEMPT, "0"))
    return sequence[min(attempt, len(sequence) - 1)]


@dataclass
class Plan:
    """Scenarios for the pods that match, one per pod in order; the last one repeats."""

    scenarios: list[Scenario]
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    name_prefix: str | None = None
    used: int = 0

    def matches(self, pod: Mapping[str, Any]) -> bool:
        metadata = pod.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        if self.name_prefix is not None and not str(metadata.get("name", "")).startswith(self.name_prefix):
            return False
        labels = metadata.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())

    def take(self) -> Scenario:
        scenario = self.scenarios[min(self.used, len(self.scenarios) - 1)]
        self.used += 1
        return scenario
