"""`gxwf bench runs --site`: the pipeline on a Slurm site beside a bare REST loop against the same slurmrestd."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from devstack import StackEndpoints
from devstack.slurm import SlurmCluster
from gxwf.bench_runs_slurm import run_slurm_benchmark
from gxwf.cli import main
from gxwf.settings import Settings
from gxwf.slurm_site import hpc_site
from tests.backbone.conftest import s3_keys


async def test_bench_runs_on_a_slurm_site_reports_both_paths_and_the_ratio(
    stack: StackEndpoints, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    sites = tmp_path / "sites.json"
    sites.write_text(json.dumps({"sites": [hpc_site(slurm_cluster)]}))
    settings = Settings(
        **s3_keys(stack),  # type: ignore[arg-type]
        nats_url=stack.nats,
        mongo_url=stack.mongo,
        s3_endpoint=stack.s3,
        sites_file=sites,
        runs_per_site=4,
        watch_interval_seconds=0.1,
        dispatch_interval_seconds=0.05,
    )
    out = StringIO()

    pipeline, loop = await run_slurm_benchmark(settings, 4, 2, "hpc", console=Console(file=out, width=250))

    assert (pipeline.failed, loop.failed) == (0, 0)
    assert len(pipeline.to_running) == len(pipeline.exit_to_recorded) == 4
    assert len(loop.exit_to_recorded) == 4
    text = out.getvalue()
    assert f"on site hpc ({slurm_cluster.rest_url})" in text
    assert "gxwf pipeline (request -> batch job -> results)" in text and "bare httpx loop: POST /job/submit" in text
    assert "pipeline / bare loop: throughput" in text


@pytest.mark.parametrize(
    ("site", "said"),
    [("local", "--site local: a local site; this benchmark measures Slurm sites"), ("elsewhere", "no such Slurm site")],
)
def test_bench_runs_names_a_site_that_is_not_a_slurm_site(
    site: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GXWF_SITES_FILE", raising=False)
    monkeypatch.setenv("GXWF_STATE_DIR", str(tmp_path))

    with pytest.raises(SystemExit) as exited:
        main(["bench", "runs", "--site", site])

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert said in line
