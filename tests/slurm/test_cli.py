"""`gxwf slurm up`: the cluster in the foreground, as the person who starts it, uses it and presses Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devstack.slurm import SlurmCluster

pytestmark = pytest.mark.servers


def test_slurm_up_prints_how_to_reach_it_and_ctrl_c_stops_it_with_its_jobs(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GXWF_")}
    # pytest's tmp_path lies below a directory only root may enter: the cluster goes under /tmp, and says so.
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "slurm", "up", "--state-dir", str(tmp_path), "--cpus", "4", "--gpus", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    cluster_dir: Path | None = None
    try:
        printed = _read_until(proc, "Ctrl-C stops it")
        assert "is closed to other users (slurmrestd runs as nobody), so the cluster is in /tmp/gxwf-slurm-" in printed
        cluster_dir = Path(re.search(r"slurm is up in (\S+)", printed).group(1))  # type: ignore[union-attr]
        fields = dict(re.findall(r"^  ([A-Za-z_ ]+): +(\S+)", printed, re.MULTILINE))
        assert fields["api version"] == "v0.0.38" and fields["user"] == "root"
        assert fields["SLURM_CONF"] == str(cluster_dir / "etc" / "slurm.conf")
        headers = {"X-SLURM-USER-NAME": "root", "X-SLURM-USER-TOKEN": Path(fields["token file"]).read_text().strip()}
        api = f"{fields['rest url']}/slurm/v0.0.38"
        nodes = httpx.get(f"{api}/nodes", headers=headers, timeout=10).json()["nodes"]
        assert (nodes[0]["cpus"], nodes[0]["gres"]) == (4, "gpu:1")
        job = {
            "name": "left-running",
            "partition": "debug",
            "current_working_directory": str(cluster_dir / "jobs"),
            "environment": {"PATH": "/usr/bin:/bin"},
        }
        body = {"script": "#!/bin/sh\nsleep 300", "job": job}
        submitted = httpx.post(f"{api}/job/submit", headers=headers, json=body)
        assert submitted.status_code == 200, submitted.text
        daemons = psutil.Process(proc.pid).children()
        assert sorted(daemon.name() for daemon in daemons) == ["munged", "slurmctld", "slurmd", "slurmrestd"]

        proc.send_signal(signal.SIGINT)

        assert proc.wait(timeout=20) == 0
        assert not [daemon for daemon in daemons if daemon.is_running()]
        assert "JobState=CANCELLED" in (cluster_dir / "log" / "jobcomp.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        if cluster_dir is not None:
            shutil.rmtree(cluster_dir.parent, ignore_errors=True)


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not printed; output:\n{''.join(seen)}")


async def test_slurm_up_rewrites_the_token_file_before_the_token_expires(
    slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gxwf import slurm_local

    monkeypatch.setattr(slurm_local, "TOKEN_LIFESPAN_SECONDS", 2)
    before = slurm_cluster.token_file.read_text()
    renewing = asyncio.create_task(slurm_local.keep_token_fresh(slurm_cluster))
    try:
        deadline = time.monotonic() + 10
        while slurm_cluster.token_file.read_text() == before:
            assert time.monotonic() < deadline, "the token file was not rewritten"
            await asyncio.sleep(0.1)
    finally:
        renewing.cancel()
    token = slurm_cluster.token_file.read_text().strip()
    headers = {"X-SLURM-USER-NAME": slurm_cluster.user, "X-SLURM-USER-TOKEN": token}
    ping = f"{slurm_cluster.rest_url}/slurm/{slurm_cluster.api_version}/ping"
    assert httpx.get(ping, headers=headers, timeout=10).status_code == 200
    slurm_cluster.mint_token()  # the other tests' token lives an hour again
