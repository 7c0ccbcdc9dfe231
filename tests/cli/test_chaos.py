"""`gxwf chaos` as an operator runs it: a short run with every kind of fault reports zeros, and bad options are
one line each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gxwf.chaos.faults import KINDS

ROOT = Path(__file__).parents[2]


def _gxwf(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # The catalogue-only rule as in production: the chaos asset comes from the catalogue.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    return subprocess.run(
        [sys.executable, "-m", "gxwf", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )


@pytest.mark.slow
def test_a_short_chaos_run_with_every_fault_kind_loses_and_doubles_nothing(tmp_path: Path) -> None:
    state = tmp_path / "chaos"
    done = _gxwf(
        "chaos", "--state-dir", str(state), "--seed", "7", "--runs", "100", "--transfers", "5", "--consumers", "5",
        "--faults", "10", "--fault-interval", "4", "--timeout", "420",
        timeout=480,
    )  # fmt: skip

    report = json.loads((state / "chaos.json").read_text())
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:], report["findings"][:20])
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("lost=0 doubled=0 stuck=0 dead_letters=0 faults=10 runs=100 seconds=")
    assert (report["lost"], report["doubled"], report["stuck"], report["dead_letters"]) == (0, 0, 0, 0)
    assert report["runs"] == 100 and report["transfers"] == 5
    assert set(report["faults_by_kind"]) == set(KINDS)
    assert all(report["p99_recovery_seconds"][kind] is not None for kind in KINDS)
    assert report["faults_not_recovered"] == {}
    # Both replicas did work, and every run ran exactly once.
    assert len(report["work_per_replica"]) == 2 and all(n > 0 for n in report["work_per_replica"].values())
    markers = list((state / "markers").iterdir())
    assert len(markers) == 100 and all(len(m.read_text().splitlines()) == 1 for m in markers)
    # Everything it started is gone: no process names its state directory any more.
    assert _processes_naming(state) == []


def _processes_naming(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and str(path) in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--consumers", "10", "--transfers", "5"], "--consumers 10: at most --transfers (5)"),
        (["--runs", "-1"], "--runs"),
        (["--timeout", "5"], "--timeout"),
        (["--nats-nodes", "9"], "--nats-nodes 9: 1 to 7"),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = _gxwf("chaos", "--state-dir", str(tmp_path / "new"), *args)

    assert done.returncode == 2
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_a_used_state_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "endpoints.json").write_text("{}")

    done = _gxwf("chaos", "--state-dir", str(tmp_path))

    assert done.returncode == 2
    why = "must be new or empty (a chaos run checks all its servers hold)"
    assert done.stderr.strip() == f"gxwf: error: --state-dir {tmp_path}: {why}"
