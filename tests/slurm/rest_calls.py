"""slurmrestd's REST API (v0.0.38) as the launcher's tests call it: plain httpx, no client of ours."""

from __future__ import annotations

import time
from typing import Any

import httpx

from devstack.slurm import SlurmCluster


def headers(cluster: SlurmCluster, token: str | None = None) -> dict[str, str]:
    token = token or cluster.token_file.read_text().strip()
    return {"X-SLURM-USER-NAME": cluster.user, "X-SLURM-USER-TOKEN": token}


def url(cluster: SlurmCluster, path: str) -> str:
    return f"{cluster.rest_url}/slurm/{cluster.api_version}/{path}"


def submit_response(cluster: SlurmCluster, script: str, name: str = "launcher-test", **job: Any) -> httpx.Response:
    body = {
        "script": "#!/bin/bash\n" + script,
        "job": {
            "name": name,
            "partition": cluster.partition,
            "current_working_directory": str(cluster.jobs_dir),
            "standard_output": f"{cluster.jobs_dir}/{name}-%j.out",
            "environment": {"PATH": "/usr/bin:/bin"},
            "tasks": 1,
            "cpus_per_task": 1,
            "time_limit": 5,
            **job,
        },
    }
    return httpx.post(url(cluster, "job/submit"), headers=headers(cluster), json=body, timeout=10)


def submit(cluster: SlurmCluster, script: str, name: str = "launcher-test", **job: Any) -> int:
    response = submit_response(cluster, script, name, **job)
    assert response.status_code == 200, response.text
    return int(response.json()["job_id"])


def job(cluster: SlurmCluster, job_id: int) -> dict[str, Any]:
    response = httpx.get(url(cluster, f"job/{job_id}"), headers=headers(cluster), timeout=10)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["jobs"][0]
    return found


def wait_for(cluster: SlurmCluster, job_id: int, *states: str, timeout: float = 30) -> dict[str, Any]:
    """The job once its state is one of `states`."""
    deadline = time.monotonic() + timeout
    while True:
        found = job(cluster, job_id)
        if found["job_state"] in states:
            return found
        assert time.monotonic() < deadline, f"job {job_id} is {found['job_state']}, not {states}"
        time.sleep(0.1)


def output(cluster: SlurmCluster, job_id: int, name: str = "launcher-test") -> str:
    return (cluster.jobs_dir / f"{name}-{job_id}.out").read_text()
