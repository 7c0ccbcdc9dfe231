"""`gxwf up --demo --slurm`: the local Slurm cluster becomes the site `hpc`, and the demo's GPU run is placed
there and nowhere else; Ctrl-C stops the cluster with everything else."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from adapters.slurm_compute.script import job_name
from tests.slurm.conftest import slurm_directory

pytestmark = [pytest.mark.servers, pytest.mark.slow]
_DAEMONS = {"munged", "slurmctld", "slurmd", "slurmrestd"}


def test_up_demo_slurm_runs_the_gpu_asset_on_hpc_only_and_stops_the_cluster() -> None:
    base = slurm_directory()
    state = base / "state"
    env = {key: value for key, value in os.environ.items() if not key.startswith("GXWF_")}
    env["COLUMNS"] = "200"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--demo", "--slurm", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = _read_until(proc, "Running.")
        assert "demo: all 5 steps succeeded" in output, output
        assert "placement: carla-standin-gpu (gpu: 1) -> site hpc" in output, output
        ran = re.search(r"run (\S+) of carla-standin-gpu ran on site hpc \(slurm\): succeeded", output)
        assert ran is not None, output
        gpu_run = ran.group(1)
        assert "site hpc (slurm)" in output

        sites = json.loads((state / "sites-in-effect.json").read_text())["sites"]
        assert [(site["name"], site["backend"], site["capabilities"].get("gpu", 0)) for site in sites] == [
            ("local", "local", 0),
            ("hpc", "slurm", 2),
        ]
        [cluster] = (state / "slurm").iterdir()
        assert sites[1]["slurm"]["job_root"] == str(cluster / "jobs")
        recorded = json.loads((state / "endpoints.json").read_text())["slurm"]
        assert recorded["rest_url"] == sites[1]["slurm"]["url"] and recorded["directory"] == str(cluster)
        assert recorded["slurm_conf"] == str(cluster / "etc" / "slurm.conf")
        # Only the GPU run became a Slurm job; the demo's other runs stayed on the local site.
        jobs = (cluster / "log" / "jobcomp.txt").read_text().splitlines()
        assert [re.search(r"Name=(\S+)", job).group(1) for job in jobs] == [job_name(gpu_run, 1)]  # type: ignore[union-attr]
        assert not (state / "runs" / gpu_run).exists()
        assert (state / "demo-results" / gpu_run / "trajectory.png").read_bytes()[:4] == b"\x89PNG"
        # An operator's command, sent to the Slurm site by name, becomes a job there.
        submitted = subprocess.run(
            [sys.executable, "-m", "gxwf", "runs", "submit", "--site", "hpc", "--state-dir", str(state), "--", "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        operator_job = job_name(submitted.stdout.strip(), 1)
        deadline = time.monotonic() + 30
        while operator_job not in (cluster / "log" / "jobcomp.txt").read_text():
            assert time.monotonic() < deadline, "the operator's run did not become a job on hpc"
            time.sleep(0.2)
        daemons = [child for child in psutil.Process(proc.pid).children(recursive=True) if child.name() in _DAEMONS]
        assert sorted(daemon.name() for daemon in daemons) == sorted(_DAEMONS)

        proc.send_signal(signal.SIGINT)

        assert proc.wait(timeout=60) == 0
        assert not [daemon for daemon in daemons if daemon.is_running()]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 180) -> str:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; output:\n{''.join(seen)}")
