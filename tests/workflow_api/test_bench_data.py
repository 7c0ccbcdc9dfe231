"""`gxwf bench data` run tiny on the session's servers: it moves the bytes both ways and prints every figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.stack_env import server_env

if TYPE_CHECKING:
    from devstack import StackEndpoints


async def test_bench_data_prints_throughputs_ratio_rss_and_requests_per_second(stack: StackEndpoints) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "200"}
    env |= server_env(stack)
    done = subprocess.run(
        [sys.executable, "-m", "gxwf", "bench", "data", "--size", "2MiB", "--requests", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"aioboto3 -> S3\s+│\s+[\d,.]+\s+│\s+[\d,.]+", out), out
    assert re.search(r"WorkflowApi -> S3\s+│\s+[\d,.]+\s+│\s+[\d,.]+", out), out
    assert re.search(r"upload [\d.]+x, download [\d.]+x", out), out
    assert re.search(r"peak RSS growth -?[\d.]+ MiB", out), out
    assert re.search(r"GET /v1/runs/\{id\}: [\d,]+ req/s beside /healthz [\d,]+ req/s", out), out
    assert "Traceback" not in done.stderr
