"""`gxwf bench backbone --nats-nodes 3 --replicas 1,2`: the single server and the 3-node cluster in one run, with
replica processes sharing the durable consumer, as a table and one JSON object last."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "gxwf", "bench", "backbone", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.servers
@pytest.mark.slow
def test_single_server_beside_the_cluster_for_each_replica_count() -> None:
    done = bench("--nats-nodes", "3", "--replicas", "2,1", "--events", "30", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["events"] == 30
    rows = figures["rows"]
    assert [(row["nats_nodes"], row["stream_replicas"], row["replicas"]) for row in rows] == [
        (1, 1, 1),
        (1, 1, 2),
        (3, 3, 1),
        (3, 3, 2),
    ]
    for row in rows:
        # Every event of the burst handled by one of the replicas, none twice.
        assert len(row["per_replica"]) == row["replicas"] and sum(row["per_replica"]) == 30
        assert row["duplicates"] == 0
        assert row["events_per_second"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    assert [row["throughput_vs_fewest_replicas"] for row in rows if row["replicas"] == 1] == [1.0, 1.0]
    table = done.stdout
    assert "vs 1 replica" in table and "1 server" in table and "3 nodes, R3" in table
    assert "2 replica(s): the 3-node cluster gives" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--replicas", "0,2"],
            "gxwf: error: --replicas 0,2: comma-separated replica counts, each 1 to 16 (e.g. 1,2,4)",
        ),
        (
            ["--replicas", "two"],
            "gxwf: error: --replicas two: comma-separated replica counts, each 1 to 16 (e.g. 1,2,4)",
        ),
        (["--nats-nodes", "9"], "gxwf: error: --nats-nodes 9: give 1 to 7 NATS servers"),
    ],
)
def test_bad_replica_and_node_counts_are_one_line(args: list[str], message: str) -> None:
    done = bench(*args, timeout=60)
    assert (done.returncode, done.stderr) == (2, message + "\n")
