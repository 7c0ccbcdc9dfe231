"""Bad input to any CLI command: one line naming what to fix, exit status 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def gxwf(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "gxwf", *args], env=clean, cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["handlers", "run", "--only", "nope"], {}, "--only nope"),
        (["handlers", "run", "--health-port", "70000"], {}, "--health-port"),
        (["handlers", "run"], {"GXWF_MAX_ATTEMPTS": "lots"}, "GXWF_MAX_ATTEMPTS"),
        (["handlers", "run"], {}, "GXWF_NATS_URL"),
        (["handlers", "run", "--replicas", "0"], {}, "--replicas 0: choose from 1 to 16"),
        (["handlers", "run", "--replicas", "17"], {}, "--replicas 17: choose from 1 to 16"),
        (["handlers", "run", "--replicas", "two"], {}, "--replicas"),
        (["handlers", "run", "--replicas", "4", "--health-port", "65534"], {}, "--health-port 65534"),
        (["handlers", "run", "--replicas", "2"], {}, "GXWF_NATS_URL"),
        (["up", "--replicas", "17"], {}, "--replicas 17: choose from 1 to 16"),
        (["events", "tail", "--subject", "wf run"], {}, "--subject"),
        (["events", "tail", "--subject", "wf.>.x"], {}, "--subject"),
        (["events", "tail", "--count", "0"], {}, "--count"),
        (["events", "tail"], {"GXWF_LOG_FORMAT": "xml"}, "GXWF_LOG_FORMAT"),
        (["runs", "submit"], {}, "'command'"),
        (["runs", "submit", "--timeout", "-5", "--", "true"], {}, "--timeout"),
        (["runs", "submit", "--run-id", "has space", "--", "true"], {"GXWF_NATS_URL": "nats://127.0.0.1:1"}, "run_id"),
        (["asyncapi", "--check"], {}, "--output"),
        (["no-such-command"], {}, "no-such-command"),
        (["up", "--state-dir"], {}, "--state-dir"),
        (
            ["tenant-gateway"],
            {
                "GXWF_NATS_URL": "nats://127.0.0.1:1",
                "GXWF_MONGO_URL": "mongodb://127.0.0.1:1",
                "GXWF_S3_ENDPOINT": "http://127.0.0.1:1",
            },
            "GXWF_GATEWAY_KEY",
        ),
        (["workflow-api"], {"GXWF_WORKFLOW_API_GATEWAY_URL": "http://127.0.0.1:1"}, "GXWF_WORKFLOW_API_GATEWAY_TOKEN"),
    ],
)
def test_bad_input_gets_one_line_and_status_2(args: list[str], env: dict[str, str], names: str, tmp_path: Path) -> None:
    result = gxwf(*args, env={"GXWF_STATE_DIR": str(tmp_path / "empty"), **env}, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gxwf: error: ")
    assert names in lines[0]


def test_asyncapi_check_reports_drift(tmp_path: Path) -> None:
    stale = tmp_path / "asyncapi.yaml"
    stale.write_text("asyncapi: 3.0.0\n")
    result = gxwf("asyncapi", "--output", str(stale), "--check")
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert gxwf("asyncapi", "--output", str(stale)).returncode == 0
    assert gxwf("asyncapi", "--output", str(stale), "--check").returncode == 0


def test_help_lists_the_commands() -> None:
    result = gxwf("--help")
    assert result.returncode == 0
    for command in ("up", "stack", "events", "handlers", "runs", "asyncapi", "bench"):
        assert command in result.stdout


def test_handlers_deploying_to_kubernetes_need_the_tenant_gateway(tmp_path: Path) -> None:
    """A per-consumer WorkflowApi gets no server credential, so the deployment handlers refuse to start without
    the gateway it should use instead."""
    sites = tmp_path / "sites.json"
    site = {
        "name": "cloud",
        "backend": "kubernetes",
        "kubernetes": {"in_cluster": True},
        "capabilities": {"cpu": 1, "memory": "1Gi"},
    }
    sites.write_text(json.dumps({"sites": [site]}))
    servers = {"GXWF_NATS_URL": "nats://127.0.0.1:1", "GXWF_MONGO_URL": "mongodb://127.0.0.1:1"}
    env = {"GXWF_STATE_DIR": str(tmp_path / "state"), "GXWF_SITES_FILE": str(sites), **servers}
    env["GXWF_S3_ENDPOINT"] = "http://127.0.0.1:1"
    for missing, extra in [
        ("GXWF_TENANT_GATEWAY_URL", {}),
        ("GXWF_GATEWAY_KEY", {"GXWF_TENANT_GATEWAY_URL": "http://gw.invalid"}),
    ]:
        result = gxwf("handlers", "run", "--only", "deployment", env={**env, **extra}, cwd=tmp_path)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert lines[0].startswith(f"gxwf: error: {missing}: required"), lines
