"""Which handler reacts to which subject: the composition root turns each row into a durable subscriber."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from events import subjects as s
from events.envelope import Envelope
from events.payloads.common import Payload
from events.payloads.run import (
    RunFailed,
    RunPending,
    RunRequested,
    RunRetrying,
    RunRunning,
    RunStopped,
    RunStopRequested,
    RunSucceeded,
    RunTimedOut,
)
from handlers.context import HandlerContext
from handlers.jobs import start, stop, submit, track
from handlers.results import publish

HandlerFn = Callable[[Envelope[Any], HandlerContext], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    group: str
    durable: str
    subject: str
    payload: type[Payload]
    handle: HandlerFn


SUBSCRIPTIONS: tuple[Subscription, ...] = (
    Subscription("jobs", "jobs-run-requested", s.RUN_REQUESTED, RunRequested, submit.on_run_requested),
    Subscription("jobs", "jobs-start-pending", s.RUN_PENDING, RunPending, start.on_run_pending),
    Subscription("jobs", "jobs-stop-requested", s.RUN_STOP_REQUESTED, RunStopRequested, stop.on_stop_requested),
    Subscription("jobs", "jobs-track-running", s.RUN_RUNNING, RunRunning, track.on_run_fact),
    Subscription("jobs", "jobs-track-succeeded", s.RUN_SUCCEEDED, RunSucceeded, track.on_run_fact),
    Subscription("jobs", "jobs-track-retrying", s.RUN_RETRYING, RunRetrying, track.on_run_fact),
    Subscription("jobs", "jobs-track-failed", s.RUN_FAILED, RunFailed, track.on_run_fact),
    Subscription("jobs", "jobs-track-stopped", s.RUN_STOPPED, RunStopped, track.on_run_fact),
    Subscription("jobs", "jobs-track-timed-out", s.RUN_TIMED_OUT, RunTimedOut, track.on_run_fact),
    Subscription("results", "results-run-succeeded", s.RUN_SUCCEEDED, RunSucceeded, publish.on_run_finished),
    Subscription("results", "results-run-failed", s.RUN_FAILED, RunFailed, publish.on_run_finished),
    Subscription("results", "results-run-stopped", s.RUN_STOPPED, RunStopped, publish.on_run_finished),
    Subscription("results", "results-run-timed-out", s.RUN_TIMED_OUT, RunTimedOut, publish.on_run_finished),
)

GROUPS: tuple[str, ...] = ("provisioning", "deployment", "assets", "jobs", "results")


def for_groups(groups: set[str] | None) -> list[Subscription]:
    return [sub for sub in SUBSCRIPTIONS if groups is None or sub.group in groups]
