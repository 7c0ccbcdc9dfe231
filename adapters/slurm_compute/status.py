"""What a Slurm job's state says about a run attempt's workload, in the terms of the compute port. Pure
functions, so each rule is testable without a cluster."""

from __future__ import annotations

import signal

from adapters.slurm_compute.api import SlurmJob
from ports.compute import WorkloadPhase, WorkloadStatus

# Admitted, not started: the run's pending time limit applies.
_WAITING = frozenset({"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"})
# Started, not ended (COMPLETING: the script ended, its processes are still being cleaned up).
_RUNNING = frozenset({"RUNNING", "SUSPENDED", "STOPPED", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING"})


def decode_wait_status(status: int) -> tuple[int, int | None]:
    """A raw wait status as (exit code, signal): 768 -> (3, None); a script killed by SIGTERM (15) -> (143, 15),
    the code a shell reports for it."""
    sig = status & 0x7F
    if sig:
        return 128 + sig, sig
    return (status >> 8) & 0xFF, None


def ended(job: SlurmJob) -> bool:
    """Neither waiting nor running any more: its processes are gone."""
    state = job.state.upper()
    return state not in _WAITING and state not in _RUNNING


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def classify(job: SlurmJob) -> WorkloadStatus:
    state = job.state.upper()
    why = f" ({job.reason})" if job.reason and job.reason != "None" else ""
    if state in _WAITING:
        return WorkloadStatus(
            WorkloadPhase.RUNNING, detail=f"Slurm job {job.job_id} {state.lower()}{why}", waiting=True
        )
    if state in _RUNNING:
        return WorkloadStatus(WorkloadPhase.RUNNING)
    code: int | None = None
    sig: int | None = None
    if job.wait_status is not None:
        code, sig = decode_wait_status(job.wait_status)
    ended = f"Slurm job {job.job_id} {state}"
    if sig is not None:
        ended += f", killed by {_signal_name(sig)}"
    if state == "COMPLETED" and code == 0:
        return WorkloadStatus(WorkloadPhase.EXITED, 0)
    if state in ("TIMEOUT", "DEADLINE"):
        return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}: over its time limit", "exit_code", timed_out=True)
    if state == "OUT_OF_MEMORY":
        return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}: over its memory limit", "oom_killed")
    if state in ("NODE_FAIL", "BOOT_FAIL"):
        return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}{why}: node lost", "node_lost")
    if state == "PREEMPTED":
        return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}: preempted", "evicted")
    if state == "CANCELLED":
        # By us (a stop: the watcher knows) or by someone on the cluster: not the workload's doing.
        return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}: cancelled", "vanished")
    if sig is not None:
        return WorkloadStatus(WorkloadPhase.EXITED, code, ended, "exit_code")
    if code:
        return WorkloadStatus(WorkloadPhase.EXITED, code, failure="exit_code")
    # FAILED with status 0: it never ran (a launch failure, a working directory the node cannot reach).
    return WorkloadStatus(WorkloadPhase.EXITED, code, f"{ended}{why}", "vanished")
