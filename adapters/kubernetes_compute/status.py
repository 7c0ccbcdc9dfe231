"""What a run attempt's Job and pods say about the workload, in the terms of the compute port.

Pure functions over the objects as the API returns them (camelCase dicts), so each rule is testable
without a cluster. Pods are read before the Job's conditions: the pod says why, the Job only that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ports.compute import WorkloadPhase, WorkloadStatus

# A container waiting for these is on its way; anything else (ImagePullBackOff ...) is worth reporting.
_ORDINARY_WAITS = frozenset({"ContainerCreating", "PodInitializing"})
_NODE_LOST_DISRUPTIONS = frozenset({"DeletionByTaintManager", "DeletionByPodGC"})


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def completed(job: dict[str, Any]) -> bool:
    return _condition(job, "Complete") is not None


def _container_states(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(c.get("state") or {}) for c in (pod.get("status") or {}).get("containerStatuses") or []]


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for state in _container_states(pod):
        if state.get("terminated"):
            return dict(state["terminated"])
    return None


def _phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _created(pod: dict[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _node_lost(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    if status.get("reason") == "NodeLost" or _phase(pod) == "Unknown":
        return True
    disruption = _condition(pod, "DisruptionTarget")
    return disruption is not None and disruption.get("reason") in _NODE_LOST_DISRUPTIONS


def from_finished_pod(pod: dict[str, Any]) -> WorkloadStatus:
    """A pod in phase Succeeded, Failed or Unknown: how its workload ended."""
    status = pod.get("status") or {}
    terminated = _terminated(pod) or {}
    code = terminated.get("exitCode")
    exit_code = int(code) if code is not None else None
    if _phase(pod) == "Succeeded":
        return WorkloadStatus(WorkloadPhase.EXITED, 0)
    if _node_lost(pod):
        detail = status.get("message") or "the pod's node was lost"
        return WorkloadStatus(WorkloadPhase.EXITED, exit_code, f"node lost: {detail}", "node_lost")
    if status.get("reason") == "Evicted":
        return WorkloadStatus(WorkloadPhase.EXITED, exit_code, f"evicted: {status.get('message') or ''}", "evicted")
    if terminated.get("reason") == "OOMKilled":
        limit = f" (exit status {exit_code})" if exit_code is not None else ""
        return WorkloadStatus(WorkloadPhase.EXITED, exit_code, f"OOMKilled: over its memory limit{limit}", "oom_killed")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        # Deleted while it ran (its node drained or lost, or by hand); a stop of ours is told apart by the
        # watcher, which knows the run was asked to stop.
        why = f"the pod was deleted before it finished (exit status {exit_code})"
        return WorkloadStatus(WorkloadPhase.EXITED, exit_code, why, "vanished")
    if exit_code is None:
        return WorkloadStatus(
            WorkloadPhase.EXITED, None, status.get("message") or "the pod failed without an exit status", "vanished"
        )
    return WorkloadStatus(WorkloadPhase.EXITED, exit_code, failure="exit_code")


def _waiting_detail(pod: dict[str, Any]) -> str | None:
    scheduled = next(
        (c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None
    )
    if scheduled is not None and scheduled.get("status") == "False":
        return f"{scheduled.get('reason') or 'Unschedulable'}: {scheduled.get('message') or ''}".rstrip(": ")
    for state in _container_states(pod):
        waiting = state.get("waiting") or {}
        reason = waiting.get("reason")
        if reason and reason not in _ORDINARY_WAITS:
            return f"{reason}: {waiting.get('message') or ''}".rstrip(": ")
    return None


def classify(
    job: dict[str, Any] | None, pods: Sequence[dict[str, Any]], warnings: Sequence[dict[str, Any]] = ()
) -> WorkloadStatus:
    """The workload of one attempt: its Job (None if there is none), the pods of that Job, and the Job's
    warning events (why it has no pod: a quota refused it ...), oldest first."""
    if job is None:
        return WorkloadStatus(WorkloadPhase.MISSING, detail="the run's Job is gone", failure="vanished")
    if completed(job):
        return WorkloadStatus(WorkloadPhase.EXITED, 0)
    # Newest first: with backoffLimit 0 there is one pod, but a lost node's pod may have a successor.
    ordered = sorted(pods, key=_created, reverse=True)
    finished = [p for p in ordered if _phase(p) in ("Succeeded", "Failed", "Unknown")]
    failed = _condition(job, "Failed")
    if failed is not None and failed.get("reason") == "DeadlineExceeded":
        terminated = next((t for p in ordered if (t := _terminated(p)) is not None), {})
        code = terminated.get("exitCode")
        detail = f"DeadlineExceeded: {failed.get('message') or 'the Job ran out of time'}"
        return WorkloadStatus(WorkloadPhase.EXITED, int(code) if code is not None else None, detail, "exit_code")
    if finished:
        # The pod tells how it ended as soon as it ends, before the Job controller has counted it.
        return from_finished_pod(finished[0])
    if failed is not None:
        # Failed with no pod left to tell why: deleted, or force-deleted with its node.
        message = failed.get("message") or failed.get("reason") or "failed"
        return WorkloadStatus(
            WorkloadPhase.EXITED, None, f"the pod is gone before it finished (Job: {message})", "vanished"
        )
    live = [p for p in ordered if not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not live:
        # The Job controller has not made the pod yet, or cannot (its last warning says why).
        last = warnings[-1] if warnings else None
        why = f"{last.get('reason')}: {last.get('message') or ''}".rstrip(": ") if last else None
        return WorkloadStatus(WorkloadPhase.RUNNING, detail=why, waiting=True)
    pod = live[0]
    if _phase(pod) == "Pending":
        return WorkloadStatus(WorkloadPhase.RUNNING, detail=_waiting_detail(pod), waiting=True)
    return WorkloadStatus(WorkloadPhase.RUNNING)
