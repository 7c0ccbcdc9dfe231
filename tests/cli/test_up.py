"""`gxwf up`: the whole system on the embedded stack, its endpoints file, clean stop, no orphans."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
from pymongo import AsyncMongoClient

KEYS = {"nats", "nats_users", "mongo", "s3", "s3_credentials", "edc_ingress", "workflow_api", "dashboard"}


def start_up(state_dir: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env["COLUMNS"] = "160"
    return subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state_dir), *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


async def wait_for_line(proc: subprocess.Popen[str], marker: str, timeout: float = 120) -> list[str]:
    assert proc.stderr is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = await asyncio.to_thread(proc.stderr.readline)
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if marker in line:
            return seen
    raise AssertionError(f"{marker!r} not printed; output:\n{''.join(seen)}")


def gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


async def test_up_demo_endpoints_restart_and_no_orphans(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = start_up(state, "--demo")
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert set(endpoints) == KEYS
        # The dashboard's URL comes first, before everything it can then show live; without a token, 401.
        assert endpoints["dashboard"].startswith("http://127.0.0.1:")
        assert output.index(f"dashboard: {endpoints['dashboard']}") < output.index("gaiax-workflows is up"), output
        assert f"GXWF_DASHBOARD_TOKEN: in {state / 'dashboard-token'}" in output
        assert httpx.get(endpoints["dashboard"] + "/tail").status_code == 401
        token = (state / "dashboard-token").read_text().strip()
        page = httpx.get(endpoints["dashboard"] + "/transfers", headers={"Authorization": f"Bearer {token}"})
        assert page.status_code == 200 and "granted" in page.text
        assert endpoints["edc_ingress"].startswith("http://127.0.0.1:")
        assert endpoints["nats"].startswith("nats://admin:") and "@127.0.0.1:" in endpoints["nats"]
        assert "127.0.0.1" in endpoints["mongo"] and endpoints["s3"].startswith("http://127.0.0.1:")
        assert "succeeded" in output, output
        # The simulated connector's transfer ends with the consumer's access granted.
        assert re.search(r"transfer [0-9a-f-]{36}: granted", output), output
        # The consumer is told where the WorkflowApi `up` started listens (8490 unless that port was taken).
        assert f"'workflowApiUrl': '{endpoints['workflow_api']}'" in output, output
        assert httpx.get(endpoints["workflow_api"] + "/healthz").json() == {"status": "alive"}
        # The demo consumer: its client profile, its CARLA stand-in run on the route, the results downloaded,
        # and that run on the transfer's timeline in the dashboard.
        profile = json.loads((state / "demo-consumer.json").read_text())
        assert profile["url"] == endpoints["workflow_api"] and len(profile["token"]) > 20
        assert oct((state / "demo-consumer.json").stat().st_mode & 0o777) == "0o600"
        results = list((state / "demo-results").glob("*/trajectory.png"))
        assert len(results) == 1 and results[0].read_bytes()[:4] == b"\x89PNG", output
        metrics = json.loads((results[0].parent / "metrics.json").read_text())
        assert metrics["arrived"] is True
        transfer = re.findall(r"/transfers/([0-9a-f-]{36})", output)[-1]
        timeline = httpx.get(
            f"{endpoints['dashboard']}/api/transfers/{transfer}/timeline", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert f"run:{results[0].parent.name}" in [phase["key"] for phase in timeline["phases"]]
        assert httpx.get(endpoints["workflow_api"] + "/v1/runs").status_code == 401
        servers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
        assert len(servers) >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode == 0
    assert gone(servers, 5) == []

    # Same state directory: the servers come back with their data (the demo's runs are still stored: the
    # backbone's shell run and the consumer's CARLA stand-in run).
    again = start_up(state)
    try:
        await wait_for_line(again, "Running.")
        endpoints = json.loads((state / "endpoints.json").read_text())
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(endpoints["mongo"])
        runs = await client["gxwf"]["runs"].find({}).to_list()
        await client.close()
        assert [run["state"] for run in runs] == ["succeeded", "succeeded"]
        servers = [child.pid for child in psutil.Process(again.pid).children(recursive=True)]
    finally:
        again.send_signal(signal.SIGKILL)
        await asyncio.to_thread(again.wait, 30)
    # Killed without a chance to clean up: the servers must still not outlive it.
    assert gone(servers, 15) == []


async def test_stack_up_starts_only_the_servers_and_stops_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "servers"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "stack", "up", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        printed = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=120)
        assert printed.strip(), "stack up printed nothing"
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert set(endpoints) == {"nats", "nats_users", "mongo", "s3", "s3_credentials"}
        names = {psutil.Process(c.pid).name() for c in psutil.Process(proc.pid).children(recursive=True)}
        assert any("nats-server" in n for n in names) and any("weed" in n for n in names)
        servers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode == 0
    assert gone(servers, 5) == []


async def test_a_demo_that_fails_says_which_step_and_exits_1_after_stopping_everything(tmp_path: Path) -> None:
    # A site too small for the CARLA stand-in (0.5 cpu): its transfer cannot be provisioned.
    sites = tmp_path / "sites.yaml"
    sites.write_text("sites:\n  - {name: local, backend: local, capabilities: {cpu: 0.25, memory: 4Gi}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= {"COLUMNS": "200", "GXWF_SITES_FILE": str(sites)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--demo", "--state-dir", str(tmp_path / "state")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    servers: list[int] = []
    try:
        seen = await wait_for_line(proc, "gaiax-workflows is up")
        servers = [child.pid for child in psutil.Process(proc.pid).children(recursive=True)]
        _, rest = await asyncio.to_thread(proc.communicate, timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = " ".join(("".join(seen) + rest).split())
    assert proc.returncode == 1, output
    assert "the demo failed at step 3 of 4 (the consumer's access): transfer" in output, output
    assert "is failed: no site fits" in output, output
    assert "Running." not in output and "Traceback" not in output
    assert gone(servers, 10) == []


def processes_using(state: Path) -> list[int]:
    """The processes whose command line names the state directory: the servers `gxwf up` started there."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if str(state) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process.info["pid"])
    return found


async def test_a_start_that_fails_midway_stops_what_had_started(tmp_path: Path) -> None:
    # The WorkflowApi's port is taken: it fails after the servers, the dashboard and the ingress have started.
    state = tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
        env |= {"COLUMNS": "200", "GXWF_WORKFLOW_API_URL": f"http://127.0.0.1:{port}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            seen = await wait_for_line(proc, "dashboard: http://")
            _, rest = await asyncio.to_thread(proc.communicate, timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = "".join(seen) + rest
    assert proc.returncode == 2, output
    errors = [line for line in output.splitlines() if line.startswith("gxwf: error:")]
    assert len(errors) == 1 and str(port) in errors[0], output
    assert output.rstrip().splitlines()[-1] == errors[0], output
    assert "Traceback" not in output and "gaiax-workflows is up" not in output
    assert not (state / "endpoints.json").exists()
    # NATS, SecantusDB and SeaweedFS keep their data under the state directory: none of them is left running.
    assert processes_using(state) == []


async def test_up_demo_with_handler_replicas(tmp_path: Path) -> None:
    """`gxwf up --demo --replicas 2`: the handlers as two processes of their own (pids in the state directory),
    which find the servers, the connector and the demo's management API themselves; the whole demo passes."""
    state = tmp_path / "state"
    proc = start_up(state, "--demo", "--replicas", "2")
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        assert "demo: all 4 steps succeeded" in output, output
        record = json.loads((state / "handlers-replicas.json").read_text())
        assert record["parent"] == proc.pid
        pids = [replica["pid"] for replica in record["replicas"]]
        assert len(set(pids)) == 2
        children = {child.pid for child in psutil.Process(proc.pid).children(recursive=True)}
        assert set(pids) <= children
        assert all("handlers" in psutil.Process(pid).cmdline() for pid in pids)
        # Both replicas recorded their figures; together they handled the demo's events.
        endpoints = json.loads((state / "endpoints.json").read_text())
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(endpoints["mongo"])
        deadline = time.monotonic() + 20
        while True:
            stats = await client["gxwf"]["replica_stats"].find({}).to_list()
            if len(stats) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await client.close()
        assert sorted(str(doc["replica"]) for doc in stats) == ["0", "1"], stats
        servers = list(children)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 90)
    assert proc.returncode == 0
    assert gone(servers, 10) == []
    assert not (state / "handlers-replicas.json").exists()
