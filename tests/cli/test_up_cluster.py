"""`gxwf stack up --nats-nodes 3` and `gxwf up --nats-nodes 3`: a 3-node JetStream cluster, every node's URL
in endpoints.json, the nodes in the summary; a bad count is one line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import pytest

from devstack import StackEndpoints
from events.permissions import connect_options
from events.servers import nats_servers
from events.subjects import STREAM
from tests.cli.test_up import wait_for_line


def env_with_outside_stores(stack: StackEndpoints, **extra: str) -> dict[str, str]:
    """The session's MongoDB-wire and S3 servers: the command starts only the NATS nodes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= {"GXWF_MONGO_URL": stack.mongo, "GXWF_S3_ENDPOINT": stack.s3, "COLUMNS": "400", **extra}
    if stack.s3_access_key and stack.s3_secret_key:
        env |= {"GXWF_S3_ACCESS_KEY": stack.s3_access_key, "GXWF_S3_SECRET_KEY": stack.s3_secret_key}
    return env


async def replicas_of_wf(nats_url: str) -> int:
    nc = await nats.connect(**connect_options(nats_url))
    try:
        return (await nc.jetstream().stream_info(STREAM)).config.num_replicas
    finally:
        await nc.close()


async def test_stack_up_with_three_nodes_lists_every_node(stack: StackEndpoints, tmp_path: Path) -> None:
    state = tmp_path / "servers"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "stack", "up", "--nats-nodes", "3", "--state-dir", str(state)],
        env=env_with_outside_stores(stack),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        printed = json.loads(await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), timeout=120))
        assert printed["nats_nodes"] == 3
        assert sorted(printed["pids"]) == ["nats-1", "nats-2", "nats-3"]
        shown = printed["nats"].split(",")
        assert len(shown) == 3 and all(url.startswith("nats://admin:***@127.0.0.1:") for url in shown)
        summary = (await wait_for_line(proc, "nats nodes:", timeout=30))[-1]
        assert summary.startswith("nats nodes: 3 in JetStream cluster gxwf, streams at 3 replicas: nats-1 nats://")
        assert "***" not in summary and "admin" not in summary

        endpoints = json.loads((state / "endpoints.json").read_text())
        assert len(nats_servers(endpoints["nats"])) == 3
        assert all(len(nats_servers(url)) == 3 for url in endpoints["nats_users"].values())
        assert await replicas_of_wf(endpoints["nats"]) == 3
        assert sorted(path.name for path in state.glob("nats*")) == ["nats-1", "nats-2", "nats-3"]
        nc = await nats.connect(**connect_options(endpoints["nats"]))
        await nc.jetstream().publish("wf.test.kept", b"kept", headers={"Nats-Msg-Id": "kept"})
        await nc.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode == 0

    # Again with the same count (here from GXWF_NATS_NODES): the cluster comes back with its events.
    same = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "stack", "up", "--state-dir", str(state)],
        env=env_with_outside_stores(stack, GXWF_NATS_NODES="3"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert same.stdout is not None
        await asyncio.wait_for(asyncio.to_thread(same.stdout.readline), timeout=120)
        endpoints = json.loads((state / "endpoints.json").read_text())
        nc = await nats.connect(**connect_options(endpoints["nats"]))
        info = await nc.jetstream().stream_info(STREAM)
        await nc.close()
        assert info.config.num_replicas == 3 and info.state.messages == 1
    finally:
        same.send_signal(signal.SIGTERM)
        await asyncio.to_thread(same.wait, 60)
    assert same.returncode == 0

    # The same state directory with another count: one line, nothing started.
    again = subprocess.run(
        [sys.executable, "-m", "gxwf", "stack", "up", "--state-dir", str(state)],
        env=env_with_outside_stores(stack),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1
    assert "holds the JetStream data of 3 NATS nodes" in again.stderr and "--nats-nodes 3" in again.stderr


async def test_up_with_three_nodes_runs_the_system_on_the_cluster(stack: StackEndpoints, tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", "up", "--state-dir", str(state)],
        env=env_with_outside_stores(stack, GXWF_NATS_NODES="3", GXWF_MONGO_DATABASE="up_cluster"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output = "".join(await wait_for_line(proc, "Running."))
        assert "nats nodes" in output and "3 in JetStream cluster gxwf, streams at 3 replicas" in output, output
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert len(nats_servers(endpoints["nats"])) == 3
        assert await replicas_of_wf(endpoints["nats"]) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["stack", "up", "--nats-nodes", "0"], {}, "gxwf: error: --nats-nodes 0: give 1 to 7 NATS servers"),
        (["up", "--nats-nodes", "8"], {}, "gxwf: error: --nats-nodes 8: give 1 to 7 NATS servers"),
        (
            ["stack", "up"],
            {"GXWF_NATS_NODES": "9"},
            "gxwf: error: GXWF_NATS_NODES: Input should be less than or equal to 7",
        ),
        (
            ["up", "--nats-nodes", "3"],
            {"GXWF_NATS_URL": "nats://127.0.0.1:9"},
            "gxwf: error: --nats-nodes: only for the embedded NATS servers, and GXWF_NATS_URL names a server to use",
        ),
    ],
)
def test_a_bad_node_count_is_one_line(args: list[str], env: dict[str, str], message: str, tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | env
    done = subprocess.run(
        [sys.executable, "-m", "gxwf", *args, "--state-dir", str(tmp_path)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (2, message + "\n")
    assert list(tmp_path.iterdir()) == []


def test_a_count_that_is_no_number_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gxwf", "stack", "up", "--nats-nodes", "three", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--nats-nodes" in done.stderr
