"""slurmrestd's request and response shapes, per API version: the one place that knows them.

v0.0.38 (Slurm 22.05) is what the tests run against. From v0.0.40 on (Slurm 23.11+), as documented upstream:
the job description's `environment` is a list of "K=V" strings; numbers the client may leave unset
(`time_limit`, `memory_per_node`) and a job's `exit_code` are objects (`{"set": true, "number": N}`,
`{"status": [...], "return_code": {...}, "signal": {...}}`); `job_state` is a list of flags. v0.0.39 already
takes the number objects but still the environment object. Everything else the backend reads or writes is
named the same in all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

ApiVersion = Literal["v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42"]


@dataclass(frozen=True)
class JobRequest:
    """One batch job, in the backend's terms."""

    name: str
    comment: str
    script: str
    working_directory: str
    standard_output: str
    environment: dict[str, str]
    cpus: int
    memory_mb: int | None
    time_limit_minutes: int
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    gres: str | None = None


@dataclass(frozen=True)
class SlurmJob:
    """What the backend reads of a job, whatever the version said."""

    job_id: int
    name: str
    comment: str
    state: str
    # The batch script's raw wait status (768 for `exit 3`, 15 for a SIGTERM); None while it has none.
    wait_status: int | None
    reason: str
    standard_output: str


class SlurmApi:
    """The paths and bodies of one API version."""

    def __init__(self, version: ApiVersion = "v0.0.38") -> None:
        self.version = version
        self._minor = int(version.rsplit(".", 1)[1])

    # --- paths

    def ping_path(self) -> str:
        return f"/slurm/{self.version}/ping"

    def submit_path(self) -> str:
        return f"/slurm/{self.version}/job/submit"

    def job_path(self, job_id: int) -> str:
        return f"/slurm/{self.version}/job/{job_id}"

    def jobs_path(self) -> str:
        return f"/slurm/{self.version}/jobs"

    # --- bodies

    def _number(self, value: int) -> int | dict[str, Any]:
        return value if self._minor < 39 else {"set": True, "infinite": False, "number": value}

    def submit_body(self, job: JobRequest) -> dict[str, Any]:
        environment: dict[str, str] | list[str] = (
            dict(job.environment) if self._minor < 40 else [f"{k}={v}" for k, v in job.environment.items()]
        )
        description: dict[str, Any] = {
            "name": job.name,
            "comment": job.comment,
            "current_working_directory": job.working_directory,
            "standard_output": job.standard_output,
            # Both streams into one file: the run's log, in the order it was written.
            "standard_error": job.standard_output,
            "environment": environment,
            "tasks": 1,
            "cpus_per_task": job.cpus,
            "time_limit": self._number(job.time_limit_minutes),
            # A run attempt is one job: a node failure ends it, and the run's retry policy decides what follows.
            "requeue": False,
        }
        if self._minor >= 39:
            description["minimum_nodes"] = 1
            description["maximum_nodes"] = 1
        else:
            description["nodes"] = [1, 1]
        if job.memory_mb is not None:
            description["memory_per_node"] = self._number(job.memory_mb)
        for field in ("partition", "account", "qos"):
            if (value := getattr(job, field)) is not None:
                description[field] = value
        if job.gres is not None:
            if self._minor >= 39:
                description["tres_per_node"] = f"gres/{job.gres.replace(':', '/', 1)}"
            else:
                description["gres"] = job.gres
        return {"script": job.script, "job": description}

    # --- answers

    def submitted_job_id(self, answer: dict[str, Any]) -> int | None:
        job_id = answer.get("job_id")
        return int(job_id) if isinstance(job_id, int) else None

    def jobs(self, answer: dict[str, Any]) -> list[SlurmJob]:
        return [self._job(raw) for raw in answer.get("jobs") or []]

    def _job(self, raw: dict[str, Any]) -> SlurmJob:
        state = raw.get("job_state")
        if isinstance(state, list):
            state = state[0] if state else "UNKNOWN"
        return SlurmJob(
            job_id=int(raw.get("job_id") or 0),
            name=str(raw.get("name") or ""),
            comment=str(raw.get("comment") or ""),
            state=str(state or "UNKNOWN"),
            wait_status=self._wait_status(raw.get("exit_code")),
            reason=str(raw.get("state_reason") or ""),
            standard_output=str(raw.get("standard_output") or ""),
        )

    @staticmethod
    def _wait_status(value: Any) -> int | None:
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            # v0.0.40+: {"status": [...], "return_code": {"number": N}, "signal": {"id": {"number": S}}}
            signal = ((value.get("signal") or {}).get("id") or {}).get("number")
            if isinstance(signal, int) and signal:
                return signal & 0x7F
            code = (value.get("return_code") or {}).get("number")
            if isinstance(code, int):
                return (code & 0xFF) << 8
            return None
        return None


def errors_of(answer: Any) -> list[dict[str, Any]]:
    """The answer's `errors`, each with `error_number` (v0.0.38 also says `error_code`) and `error`."""
    if not isinstance(answer, dict):
        return []
    return [e for e in answer.get("errors") or [] if isinstance(e, dict)]


def error_number(error: dict[str, Any]) -> int | None:
    for key in ("error_number", "error_code"):
        if isinstance(value := error.get(key), int):
            return value
    return None
