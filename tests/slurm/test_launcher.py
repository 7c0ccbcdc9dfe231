"""The local Slurm cluster, observed as a client of slurmrestd and as the operator who stops it."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import psutil
import pytest

from devstack.errors import StackError
from devstack.netports import reserve_ports
from devstack.slurm import SlurmCluster, start_slurm
from tests.slurm.conftest import slurm_directory
from tests.slurm.rest_calls import headers, job, output, submit, submit_response, url, wait_for

pytestmark = pytest.mark.servers


def test_a_job_submitted_over_rest_runs_to_completed(slurm_cluster: SlurmCluster) -> None:
    job_id = submit(slurm_cluster, "echo hello from slurm")

    finished = wait_for(slurm_cluster, job_id, "COMPLETED", "FAILED", "CANCELLED")

    assert finished["job_state"] == "COMPLETED"
    assert finished["exit_code"] == 0
    assert output(slurm_cluster, job_id) == "hello from slurm\n"
    assert slurm_cluster.rest_url.startswith("http://127.0.0.1:")


def test_the_node_offers_the_configured_cpus_memory_and_gpus(slurm_cluster: SlurmCluster) -> None:
    response = httpx.get(url(slurm_cluster, "nodes"), headers=headers(slurm_cluster), timeout=10)

    [node] = response.json()["nodes"]
    assert (node["cpus"], node["gres"], node["real_memory"]) == (16, "gpu:2", slurm_cluster.memory_mb)
    assert (slurm_cluster.cpus, slurm_cluster.gpus) == (16, 2)
    assert node["address"] == "127.0.0.1"


def test_cpu_jobs_run_side_by_side(slurm_cluster: SlurmCluster) -> None:
    jobs = [submit(slurm_cluster, "sleep 1.5") for _ in range(4)]

    finished = [wait_for(slurm_cluster, job_id, "COMPLETED") for job_id in jobs]

    # All four ran at one moment: the last to start started before the first to end ended.
    assert max(found["start_time"] for found in finished) < min(found["end_time"] for found in finished)


def test_a_gpu_job_runs_and_is_given_one_gpu(slurm_cluster: SlurmCluster) -> None:
    job_id = submit(slurm_cluster, "echo gpus=$CUDA_VISIBLE_DEVICES", name="gpu-one", gres="gpu:1")

    finished = wait_for(slurm_cluster, job_id, "COMPLETED", "FAILED", "CANCELLED")

    assert finished["job_state"] == "COMPLETED"
    assert finished["tres_per_node"] == "gres:gpu:1"
    assert output(slurm_cluster, job_id, "gpu-one").strip() in ("gpus=0", "gpus=1")


def test_more_gpus_than_the_node_has_are_refused(slurm_cluster: SlurmCluster) -> None:
    response = submit_response(slurm_cluster, "true", gres="gpu:3")

    assert response.status_code == 500
    assert response.json()["errors"][0]["error"] == "Requested node configuration is not available"


def test_two_jobs_wanting_both_gpus_run_one_after_the_other(slurm_cluster: SlurmCluster) -> None:
    first = submit(slurm_cluster, "sleep 1", name="gpu-both", gres="gpu:2")
    second = submit(slurm_cluster, "true", name="gpu-both", gres="gpu:2")

    wait_for(slurm_cluster, first, "RUNNING")
    waiting = job(slurm_cluster, second)
    assert (waiting["job_state"], waiting["state_reason"]) == ("PENDING", "Resources")

    done_first = wait_for(slurm_cluster, first, "COMPLETED")
    done_second = wait_for(slurm_cluster, second, "COMPLETED")
    assert done_second["start_time"] >= done_first["end_time"]


def test_a_new_token_is_written_privately_and_works(slurm_cluster: SlurmCluster) -> None:
    token = slurm_cluster.mint_token(lifespan_seconds=600)

    assert slurm_cluster.token_file.read_text().strip() == token
    assert stat.S_IMODE(slurm_cluster.token_file.stat().st_mode) == 0o600
    ping = httpx.get(url(slurm_cluster, "ping"), headers=headers(slurm_cluster, token), timeout=10)
    assert ping.status_code == 200


def test_a_client_mints_its_own_tokens_with_the_jwt_key(slurm_cluster: SlurmCluster) -> None:
    key = slurm_cluster.jwt_key.read_bytes()
    now = int(time.time())
    fresh = jwt.encode({"sun": slurm_cluster.user, "iat": now, "exp": now + 300}, key, algorithm="HS256")
    expired = jwt.encode({"sun": slurm_cluster.user, "iat": now - 600, "exp": now - 300}, key, algorithm="HS256")

    ping = url(slurm_cluster, "ping")
    assert httpx.get(ping, headers=headers(slurm_cluster, fresh), timeout=10).status_code == 200
    assert httpx.get(ping, headers=headers(slurm_cluster, expired), timeout=10).status_code != 200


def test_restarting_slurmrestd_keeps_running_jobs(slurm_cluster: SlurmCluster) -> None:
    job_id = submit(slurm_cluster, "sleep 2; echo survived", name="rest-restart")
    wait_for(slurm_cluster, job_id, "RUNNING")
    before = slurm_cluster.pids["slurmrestd"]

    slurm_cluster.restart_rest()

    assert slurm_cluster.pids["slurmrestd"] != before
    assert job(slurm_cluster, job_id)["job_state"] in ("RUNNING", "COMPLETED")
    assert wait_for(slurm_cluster, job_id, "COMPLETED")["exit_code"] == 0
    assert output(slurm_cluster, job_id, "rest-restart") == "survived\n"


def test_stop_cancels_every_job_and_leaves_no_process() -> None:
    base = slurm_directory()
    try:
        cluster = start_slurm(base / "cluster", cpus=2, gpus=1)
        running = submit(cluster, "echo $$ > pid-$SLURM_JOB_ID; exec sleep 300", gres="gpu:1")
        pending = submit(cluster, "sleep 300", gres="gpu:1")
        wait_for(cluster, running, "RUNNING")
        job_pid = _wait_for_pid(cluster.jobs_dir / f"pid-{running}")
        daemons = [psutil.Process(pid) for pid in cluster.pids.values()]
        assert job(cluster, pending)["job_state"] == "PENDING"

        started = time.monotonic()
        cluster.stop()
        took = time.monotonic() - started

        assert not psutil.pid_exists(job_pid)
        assert not [daemon for daemon in daemons if daemon.is_running()]
        assert not [entry.name for entry in (cluster.directory / "spool").iterdir() if entry.name.startswith("n1_")]
        ended = (cluster.directory / "log" / "jobcomp.txt").read_text()
        assert f"JobId={running} " in ended and f"JobId={pending} " in ended
        assert ended.count("JobState=CANCELLED") == 2
        assert took < 10
        cluster.stop()  # a second stop does nothing
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_directory_is_never_used_twice(slurm_cluster: SlurmCluster) -> None:
    with pytest.raises(StackError, match="not empty"):
        start_slurm(slurm_cluster.directory)


def _wait_for_pid(path: Path) -> int:
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was not written"
        time.sleep(0.05)
    return int(path.read_text())


def test_the_daemons_do_not_outlive_a_parent_killed_without_cleanup() -> None:
    base = slurm_directory()
    starter = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from devstack.slurm import start_slurm\n"
        "cluster = start_slurm(Path(sys.argv[1]), cpus=2, gpus=0)\n"
        "print(json.dumps(cluster.pids), flush=True)\n"
        "time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", starter, str(base / "cluster")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        daemons = [psutil.Process(pid) for pid in json.loads(proc.stdout.readline()).values()]
        assert len(daemons) == 4

        proc.kill()
        proc.wait(timeout=10)

        deadline = time.monotonic() + 15
        while [daemon for daemon in daemons if _alive(daemon)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [daemon.name() for daemon in daemons if _alive(daemon)]
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(base, ignore_errors=True)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("taken", [0, 2], ids=["slurmctld", "slurmrestd"])
def test_a_port_taken_after_it_was_chosen_is_replaced_by_another(taken: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports are free when chosen but released before the daemons bind them: another program may take one."""
    from devstack.slurm import cluster as cluster_module

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    chosen: list[list[int]] = []

    def reserve(count: int) -> list[int]:
        ports = reserve_ports(count)
        if not chosen:
            ports[0] = squatter.getsockname()[1]  # slurmctld's
        chosen.append(ports)
        return ports

    monkeypatch.setattr(cluster_module, "reserve_ports", reserve)
    base = slurm_directory()
    try:
        with start_slurm(base / "cluster", cpus=2, gpus=0) as cluster:
            assert len(chosen) == 2
            assert cluster.rest_url == f"http://127.0.0.1:{chosen[1][2]}"
            assert httpx.get(url(cluster, "ping"), headers=headers(cluster), timeout=10).status_code == 200
            assert sorted(cluster.pids) == ["munged", "slurmctld", "slurmd", "slurmrestd"]
    finally:
        squatter.close()
        shutil.rmtree(base, ignore_errors=True)


def test_a_directory_other_users_cannot_reach_is_refused_before_anything_starts(tmp_path: Path) -> None:
    # pytest's own temporary directories lie below one only root may enter; slurmrestd runs as nobody.
    with pytest.raises(StackError, match="is not searchable by other users: slurmrestd"):
        start_slurm(tmp_path / "cluster")
    assert not (tmp_path / "cluster").exists()
