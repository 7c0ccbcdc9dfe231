"""The Carla stand-in as the local backend runs it: a route in, trajectory CSV, PNG plot and metrics out."""

from __future__ import annotations

import csv
import json
import math
import struct
import subprocess
import sys
from pathlib import Path

from gxwf.definitions import load_assets

ROOT = Path(__file__).parents[2]
ROUTE = ROOT / "deploy" / "assets" / "routes" / "carla-loop.csv"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carla_standin", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_drives_the_route_and_writes_trajectory_plot_and_metrics(tmp_path: Path) -> None:
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "route.csv").write_text(ROUTE.read_text())
    asset = next(a for a in load_assets(ROOT / "deploy" / "assets") if a.id == "carla-minimal-cpu")
    # The asset's own command line, from its run directory, as the local backend starts it.
    assert asset.command[:3] == ["python3", "-m", "carla_standin"]
    done = run(*asset.command[3:], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader((tmp_path / "outputs" / "trajectory.csv").open()))
    assert len(rows) > 100 and rows[0]["speed_mps"] == "0.000"
    end = rows[-1]
    assert math.dist((float(end["x_m"]), float(end["y_m"])), (-5, 30)) < 1.0  # the last waypoint
    assert max(float(r["cross_track_m"]) for r in rows) < 10  # it followed the route
    png = (tmp_path / "outputs" / "trajectory.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (800, 600)
    metrics = json.loads((tmp_path / "outputs" / "metrics.json").read_text())
    assert metrics["arrived"] is True and metrics["distance_m"] > 300
    assert {o.path for o in asset.outputs} == {
        "outputs/trajectory.csv",
        "outputs/trajectory.png",
        "outputs/metrics.json",
    }


def test_json_route_and_the_speed_limit_parameter(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text(json.dumps({"waypoints": [[0, 0], [100, 0]]}))
    slow = run("--route", "r.json", "--out", "slow", "--speed-limit", "5", cwd=tmp_path)
    fast = run("--route", "r.json", "--out", "fast", "--speed-limit", "20", cwd=tmp_path)
    assert slow.returncode == 0 and fast.returncode == 0, slow.stderr + fast.stderr
    slow_m = json.loads((tmp_path / "slow" / "metrics.json").read_text())
    fast_m = json.loads((tmp_path / "fast" / "metrics.json").read_text())
    assert slow_m["max_speed_mps"] <= 5.0 < fast_m["max_speed_mps"]
    assert slow_m["duration_s"] > fast_m["duration_s"]


def test_bad_routes_are_one_line_errors_with_exit_status_2(tmp_path: Path) -> None:
    cases = {
        "one.csv": ("0,0\n", "at least two distinct waypoints"),
        "text.csv": ("0,0\n1,north\n", "line 2: x and y must be numbers"),
        "huge.csv": ("0,0\n1e9,0\n", "within"),
        "bad.json": ('{"waypoints": [[0, 0], "x"]}', "waypoints[1]"),
        "broken.json": ('{"waypoints": [', "not valid JSON"),
    }
    for name, (body, message) in cases.items():
        (tmp_path / name).write_text(body)
        done = run("--route", name, "--out", "out", cwd=tmp_path)
        assert done.returncode == 2, (name, done.stdout)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, (name, done.stderr)
    missing = run("--route", "nowhere.csv", "--out", "out", cwd=tmp_path)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    negative = run("--route", "one.csv", "--out", "out", "--speed-limit", "-1", cwd=tmp_path)
    assert negative.returncode == 2 and "--speed-limit" in negative.stderr
