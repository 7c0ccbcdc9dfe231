"""`gxwf client ...` as a consumer runs it: a subprocess against the WorkflowApi and the real handlers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from pathlib import Path

from tests.workflow_api.conftest import Api, eventually


async def gxwf(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gxwf",
        *args,
        env=base | (env or {}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_a_consumer_session_from_the_command_line(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    env = {"GXWF_CLIENT_URL": api.url, "GXWF_CLIENT_TOKEN": token}
    code, out, err = await gxwf("client", "assets", "list", "--json", env=env)
    assert code == 0, err
    assert [a["id"] for a in json.loads(out)] == ["count-lines", "sleeper"]

    text = tmp_path / "text.txt"
    text.write_text("1\n2\n3\n4\n")
    code, out, err = await gxwf(
        "client", "run", "start", "count-lines", "-p", "COUNT=2", "-i", f"text=@{text}", "--follow", env=env
    )
    assert code == 0, err
    assert "line 0 fast\nline 1 fast\n" in out and "done" in out
    run_id = err.split("run ", 1)[1].split()[0]
    assert f"run {run_id} succeeded" in err

    code, out, err = await gxwf("client", "run", "status", run_id, "--json", env=env)
    assert code == 0 and json.loads(out)["state"] == "succeeded", err
    code, out, _ = await gxwf("client", "run", "list", "--json", "--state", "succeeded", env=env)
    assert [r["id"] for r in json.loads(out)] == [run_id]
    code, out, _ = await gxwf("client", "inputs", "list", "--json", env=env)
    assert [i["name"] for i in json.loads(out)] == ["text"]

    dest = tmp_path / "results"
    code, out, err = await gxwf("client", "results", "download", run_id, "--dest", str(dest), env=env)
    assert code == 0, err
    assert (dest / "count.txt").read_text().strip() == "4"
    code, out, _ = await gxwf("client", "results", "list", run_id, "--json", env=env)
    listed = json.loads(out)["files"][0]
    assert listed["sha256"] == hashlib.sha256((dest / "count.txt").read_bytes()).hexdigest()
    code, out, _ = await gxwf("client", "logs", run_id, env=env)
    assert code == 0 and "line 1 fast" in out


async def test_profiles_and_one_line_errors(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text(f"profiles:\n  mine:\n    url: {api.url}\n    token: {token}\n")
    env = {"GXWF_CLIENT_PROFILES": str(profiles)}
    code, out, err = await gxwf("client", "--profile", "mine", "assets", "show", "count-lines", env=env)
    assert code == 0 and json.loads(out)["id"] == "count-lines", err
    # A file that is one profile, as `gxwf up --demo` writes for its consumer (DIR/demo-consumer.json).
    single = tmp_path / "demo-consumer.json"
    single.write_text(json.dumps({"url": api.url, "token": token}))
    code, out, err = await gxwf("client", "--profile", str(single), "assets", "show", "count-lines")
    assert code == 0 and json.loads(out)["id"] == "count-lines", err
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"url": api.url}))

    failures = [
        (["client", "--url", api.url, "--token", "wrong", "assets", "list"], "401 unknown or wrong bearer token"),
        (["client", "--profile", "nope", "assets", "list"], "--profile nope: not in"),
        (["client", "assets", "list"], "no WorkflowApi URL"),
        (["client", "--profile", "mine", "run", "start", "count-lines", "-p", "COUNT=abc"], "COUNT takes a integer"),
        (
            ["client", "--profile", "mine", "run", "start", "count-lines", "-p", "COUNT=99", "-i", "text=in-x"],
            "422 parameters.COUNT: must be at most 50",
        ),
        (["client", "--profile", "mine", "run", "status", "run-unknown"], "404 no run run-unknown"),
        (["client", "--profile", "mine", "inputs", "upload", str(tmp_path / "missing")], "no such file"),
        (["client", "--url", "http://127.0.0.1:9", "--token", "t", "assets", "list"], "cannot reach"),
        (["client", "--profile", str(broken), "assets", "list"], "the file has no url and token"),
    ]
    for args, message in failures:
        code, _, err = await gxwf(*args, env=env)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (args, err)


async def test_follow_exits_1_when_the_run_does_not_succeed(api: Api) -> None:
    _, token = await api.consumer()
    env = {"GXWF_CLIENT_URL": api.url, "GXWF_CLIENT_TOKEN": token}
    follow = asyncio.create_task(gxwf("client", "run", "start", "sleeper", "--follow", env=env))
    async with api.client(token) as client:

        async def running() -> str | None:
            runs = await client.runs(state="running")
            return runs[0].id if runs else None

        run_id = await eventually(running, timeout=60)
        code, out, _ = await gxwf("client", "run", "stop", run_id, env=env)
        assert code == 0 and "stop requested" in out
    code, out, err = await follow
    assert code == 1 and "sleeping" in out and f"run {run_id} stopped" in err, err


def assert_clean_exit(err: str) -> None:
    """Nothing the interpreter prints about streams left open or closed from the wrong task."""
    for noise in ("RuntimeError", "Traceback", "Exception ignored", "aclose"):
        assert noise not in err, err


async def test_follow_closes_its_log_stream_cleanly(api: Api, tmp_path: Path) -> None:
    _, token = await api.consumer()
    env = {"GXWF_CLIENT_URL": api.url, "GXWF_CLIENT_TOKEN": token}
    text = tmp_path / "text.txt"
    text.write_text("1\n2\n")
    code, out, err = await gxwf(
        "client", "run", "start", "count-lines", "-p", "COUNT=3", "-i", f"text=@{text}", "--follow", env=env
    )
    assert code == 0 and "line 2 fast" in out, err
    assert_clean_exit(err)
    run_id = err.split("run ", 1)[1].split()[0]

    # The run has ended: `logs --follow` replays the whole log and stops at its end event.
    code, out, err = await gxwf("client", "logs", run_id, "--follow", env=env)
    assert code == 0 and "line 2 fast" in out and f"run {run_id} succeeded" in err, err
    assert_clean_exit(err)


async def test_interrupting_follow_closes_its_log_stream_cleanly(api: Api) -> None:
    _, token = await api.consumer()
    base = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gxwf",
        "client",
        "run",
        "start",
        "sleeper",
        "--follow",
        env=base | {"GXWF_CLIENT_URL": api.url, "GXWF_CLIENT_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    # Interrupted mid-stream, while the response is open: Ctrl-C as a person following a long run does.
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
    assert line == b"sleeping\n"
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 130, err
    assert_clean_exit(err.decode())
    async with api.client(token) as client:
        for run in await client.runs(state="running"):
            await client.stop_run(run.id)
