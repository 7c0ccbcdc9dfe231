"""Status rules for what the fake controller does not play: Job deadlines, pods gone, odd container states."""

from __future__ import annotations

from typing import Any

from adapters.kubernetes_compute.status import classify
from ports.compute import WorkloadPhase, WorkloadStatus


def _job(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "status": {
            "conditions": [{"type": t, "status": "True", "reason": r, "message": msg} for t, r, msg in conditions]
        }
    }


def _pod(phase: str, state: dict[str, Any] | None = None, **status: Any) -> dict[str, Any]:
    containers = [{"name": "workload", "state": state}] if state is not None else []
    return {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {"phase": phase, "containerStatuses": containers, **status},
    }


def test_a_job_past_its_deadline_ends_with_the_reason() -> None:
    job = _job(("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"))
    status = classify(job, [_pod("Failed", {"terminated": {"exitCode": 143, "reason": "Error"}})])
    assert (status.phase, status.exit_code, status.failure) == (WorkloadPhase.EXITED, 143, "exit_code")
    assert status.detail is not None and status.detail.startswith("DeadlineExceeded")


def test_a_failed_job_without_its_pod_vanished() -> None:
    status = classify(_job(("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")), [])
    assert (status.phase, status.failure) == (WorkloadPhase.EXITED, "vanished")


def test_a_finished_pod_is_read_before_the_job_controller_counts_it() -> None:
    status = classify(_job(), [_pod("Failed", {"terminated": {"exitCode": 2, "reason": "Error"}})])
    assert status == WorkloadStatus(WorkloadPhase.EXITED, 2, failure="exit_code")


def test_a_job_without_pods_yet_is_waiting_and_a_terminating_pod_is_not_the_verdict() -> None:
    assert classify(_job(), []) == WorkloadStatus(WorkloadPhase.RUNNING, waiting=True)
    terminating = _pod("Running", {"running": {}})
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    assert classify(_job(), [terminating]).waiting


def test_a_container_being_created_waits_without_a_complaint() -> None:
    status = classify(_job(), [_pod("Pending", {"waiting": {"reason": "ContainerCreating"}})])
    assert status == WorkloadStatus(WorkloadPhase.RUNNING, waiting=True)
    running = classify(_job(), [_pod("Running", {"running": {"startedAt": "2026-01-01T00:00:00Z"}})])
    assert running == WorkloadStatus(WorkloadPhase.RUNNING)


def test_a_job_without_pods_reports_its_last_warning() -> None:
    warnings = [
        {"reason": "FailedCreate", "message": "old"},
        {"reason": "FailedCreate", "message": 'pods "x" is forbidden: exceeded quota: runs'},
    ]
    status = classify(_job(), [], warnings)
    assert status.waiting and status.detail == 'FailedCreate: pods "x" is forbidden: exceeded quota: runs'


def test_a_pod_deleted_while_it_ran_vanished_rather_than_failed() -> None:
    pod = _pod("Failed", {"terminated": {"exitCode": 143, "reason": "Error"}})
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:01Z"
    status = classify(_job(), [pod])
    assert (status.exit_code, status.failure) == (143, "vanished") and "deleted" in (status.detail or "")
