"""DIR/chaos.json and the one line a chaos run prints."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gxwf.chaos.checks import DEAD_LETTER, DOUBLED, LOST, STUCK, Findings
from gxwf.chaos.faults import FaultRecord

REPORT_FILE = "chaos.json"


def p99(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 2) if ordered else None


@dataclass
class Report:
    seed: int
    options: dict[str, Any]
    runs: int = 0
    transfers: int = 0
    faults: list[FaultRecord] = field(default_factory=list)
    findings: Findings = field(default_factory=Findings)
    work_per_replica: dict[str, int] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    workload_problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        return self.findings.count(LOST)

    @property
    def doubled(self) -> int:
        return self.findings.count(DOUBLED)

    @property
    def stuck(self) -> int:
        return self.findings.count(STUCK)

    @property
    def dead_letters(self) -> int:
        return self.findings.count(DEAD_LETTER)

    @property
    def failed(self) -> bool:
        return any((self.lost, self.doubled, self.stuck, self.dead_letters, self.workload_problems))

    def line(self) -> str:
        return (
            f"lost={self.lost} doubled={self.doubled} stuck={self.stuck} dead_letters={self.dead_letters} "
            f"faults={len(self.faults)} runs={self.runs} seconds={self.seconds:.0f}"
        )

    def as_json(self) -> dict[str, Any]:
        by_kind: dict[str, list[float]] = defaultdict(list)
        unrecovered: Counter[str] = Counter()
        for fault in self.faults:
            if fault.recovery_seconds is None:
                unrecovered[fault.kind] += 1
            else:
                by_kind[fault.kind].append(fault.recovery_seconds)
        return {
            "seed": self.seed,
            "options": self.options,
            "summary": self.line(),
            "runs": self.runs,
            "transfers": self.transfers,
            "lost": self.lost,
            "doubled": self.doubled,
            "stuck": self.stuck,
            "dead_letters": self.dead_letters,
            "faults_by_kind": dict(Counter(f.kind for f in self.faults)),
            "p99_recovery_seconds": {kind: p99(values) for kind, values in sorted(by_kind.items())},
            "faults_not_recovered": dict(unrecovered),
            "work_per_replica": self.work_per_replica,
            "durations_seconds": {k: round(v, 1) for k, v in self.durations.items()},
            "seconds": round(self.seconds, 1),
            "workload_problems": self.workload_problems,
            "findings": self.findings.as_json(),
            "faults": [f.as_json() for f in self.faults],
        }

    def write(self, state_dir: Path) -> Path:
        path = state_dir / REPORT_FILE
        path.write_text(json.dumps(self.as_json(), indent=2) + "\n")
        return path
