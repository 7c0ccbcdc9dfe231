"""What one handler process did, per replica: events handled by each handler, passes of each periodic loop, the
work those passes did, and what the loops did under their leases.

Two views: Prometheus counters on the process's /metrics (`gxwf_replica_events_handled_total` and
`gxwf_replica_loop_passes_total`, labelled with the replica number), and a document per process in the store's
`replica_stats` collection, written every GXWF_REPLICA_STATS_INTERVAL_SECONDS and at a clean stop, which outlives
the process (a killed replica's last figures stay):

    {"_id": "<host>:<pid>:<random>", "replica": "1", "pid": 4102, "started_at": ..., "updated_at": ...,
     "stopped": false, "events_handled": 812, "events_by_handler": {"jobs-start-pending-local": 97, ...},
     "passes": {"jobs-dispatcher": 301, ...}, "pass_work": {"jobs-dispatcher": 97, ...},
     "lease_lost": {"jobs-dispatcher": 1},
     "fenced": [{"lease": "<lease name>", "epoch": 3, "acts": 194, "last_at": ...}], "refused": 1}
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from adapters.fencing import LeaseGuard
from events.replica_metrics import LOOP_PASSES, REPLICA_EVENTS_HANDLED


class ReplicaFigures:
    def __init__(self, replica: str, holder: str) -> None:
        self.replica = replica
        self.holder = holder
        self.started_at = datetime.now(UTC)
        self.events: Counter[str] = Counter()
        self.passes: Counter[str] = Counter()
        self.work: Counter[str] = Counter()
        self.lease_lost: Counter[str] = Counter()
        self.guards: list[LeaseGuard] = []

    def handled(self, handler: str) -> None:
        self.events[handler] += 1
        REPLICA_EVENTS_HANDLED.labels(self.replica, handler).inc()

    def passed(self, loop: str, work: int) -> None:
        self.passes[loop] += 1
        self.work[loop] += work
        LOOP_PASSES.labels(self.replica, loop).inc()

    def lost(self, loop: str) -> None:
        self.lease_lost[loop] += 1

    def document(self, *, stopped: bool = False) -> dict[str, Any]:
        fenced = [
            {"lease": name, "epoch": epoch, "acts": count, "last_at": last}
            for guard in self.guards
            for (name, epoch), (count, last) in guard.acts.items()
        ]
        return {
            "replica": self.replica,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC),
            "stopped": stopped,
            "events_handled": sum(self.events.values()),
            "events_by_handler": dict(self.events),
            "passes": dict(self.passes),
            "pass_work": dict(self.work),
            "lease_lost": dict(self.lease_lost),
            "fenced": fenced,
            "refused": sum(guard.refused for guard in self.guards),
        }
