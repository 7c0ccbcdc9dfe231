"""Settings: every configured directory is absolute from the start, whatever the working directory later is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.local_compute import LocalProcessBackend
from events.payloads.run import RunSpec
from gxwf.settings import Settings, load_settings
from ports.compute import WorkloadPhase


def test_relative_directories_become_absolute_at_settings_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GXWF_STATE_DIR", "state dir/zürich")
    monkeypatch.setenv("GXWF_SITES_FILE", "sites.yaml")
    monkeypatch.setenv("GXWF_KUBECONFIG", "~/kube config")
    settings = Settings()
    assert settings.state_dir == tmp_path / "state dir" / "zürich"
    assert settings.sites_file == tmp_path / "sites.yaml"
    assert settings.kubeconfig == tmp_path / "home" / "kube config"
    # The --state-dir option goes through the same validation as the variable.
    assert load_settings(Path("other ü")).state_dir == tmp_path / "other ü"
    assert Settings().model_dump()["state_dir"].is_absolute()


async def test_a_local_run_starts_under_a_relative_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The wrapper starts in the run's work directory: paths relative to where gxwf started would miss.
    monkeypatch.chdir(tmp_path)
    backend = LocalProcessBackend(Path("state dir/runs ü"))
    spec = RunSpec(command=["/bin/sh", "-c", "echo made > outputs/out.txt"])
    await backend.start("r-rel", spec, {})
    for _ in range(100):
        status = await backend.status("r-rel")
        if status.phase is WorkloadPhase.EXITED:
            break
        await asyncio.sleep(0.05)
    assert status.phase is WorkloadPhase.EXITED and status.exit_code == 0
    assert (tmp_path / "state dir" / "runs ü" / "r-rel" / "outputs" / "out.txt").read_text() == "made\n"
