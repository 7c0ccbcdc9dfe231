from __future__ import annotations

from events.envelope import derived_id
from events.payloads.common import Payload


def attempt_fact_id(run_id: str, fact: type[Payload], attempt: int) -> str:
    """The id of a fact about one attempt of a run: the same on every retry of a handler, and different for the
    next attempt, whose `running` JetStream must not mistake for a duplicate of the first one's.

    Every reporter of a fact uses it (the stop handler and the watcher both report `stopped`): one fact, one id."""
    return derived_id(run_id, fact.subject, f"attempt-{attempt}")
