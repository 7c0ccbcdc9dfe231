"""The embedded store killed with SIGKILL under writes: what it acknowledged is there after a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gxwf.bench_store_crash import measure

GXWF_BENCH = [sys.executable, "-m", "gxwf", "bench", "store-crash"]


async def test_the_embedded_default_keeps_every_acknowledged_write_through_sigkill(tmp_path: Path) -> None:
    (figures,) = await measure(["embedded default"], trials=3, writes=300, seed=7, workdir=tmp_path)
    assert len(figures.trials) == 3
    assert figures.acknowledged >= 3 * 150  # each kill comes after half the writes at least
    assert figures.lost == 0, [t.lost_examples for t in figures.trials]


def test_the_benchmark_prints_its_figures_per_setting(tmp_path: Path) -> None:
    done = subprocess.run(
        [*GXWF_BENCH, "--trials", "1", "--writes", "100", "--setting", "w=1", "--setting", "journal=true"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("store-crash ")]
    assert [line.split()[1] for line in lines] == ["setting=w=1", "setting=journal=true"]
    assert all("acknowledged=" in line and "writes_per_s=" in line for line in lines)
    assert "lost=0" in lines[1]


def test_an_unknown_setting_is_one_line() -> None:
    done = subprocess.run(
        [*GXWF_BENCH, "--setting", "fsync-everything"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0
    assert "--setting fsync-everything: choose from" in done.stderr
    assert "Traceback" not in done.stderr
