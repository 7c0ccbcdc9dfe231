"""Per-replica Prometheus counters: events handled and periodic-loop passes, labelled with the replica number.

Registered once per process in the default registry, so they live below the entry points that count into them
(a second import of a registering module would clash with the first registration)."""

from __future__ import annotations

from prometheus_client import Counter

REPLICA_EVENTS_HANDLED = Counter(
    "gxwf_replica_events_handled_total", "Events handled to the end by this replica", ["replica", "handler"]
)
LOOP_PASSES = Counter(
    "gxwf_replica_loop_passes_total", "Passes of a periodic loop in this replica", ["replica", "loop"]
)
