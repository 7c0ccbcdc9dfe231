"""Without Debian's Slurm packages the launcher says, in one message, what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.slurm import SlurmUnavailable
from devstack.slurm.packages import find_programs


def test_missing_packages_are_named_with_the_command_that_installs_them(tmp_path: Path) -> None:
    with pytest.raises(SlurmUnavailable) as raised:
        find_programs(search_path=str(tmp_path), plugin_globs=(str(tmp_path / "*.so"),))

    message = str(raised.value)
    assert "\n" not in message
    assert "missing Debian packages: slurmctld slurmd slurm-client munge slurmrestd slurm-wlm-jwt-plugin" in message
    assert "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge slurmrestd" in message


def test_only_the_missing_plugin_is_named_when_the_programs_are_there(tmp_path: Path) -> None:
    for program in ("munged", "slurmctld", "slurmd", "slurmrestd", "scontrol", "sinfo", "squeue", "scancel"):
        (tmp_path / program).write_text("#!/bin/sh\n")
        (tmp_path / program).chmod(0o755)

    with pytest.raises(SlurmUnavailable, match=r"missing Debian packages: slurm-wlm-jwt-plugin\)"):
        find_programs(search_path=str(tmp_path), plugin_globs=(str(tmp_path / "*.so"),))


@pytest.mark.parametrize("command", [["up", "--slurm"], ["up", "--demo", "--slurm"], ["slurm", "up"]])
def test_the_commands_say_in_one_line_what_to_install_and_exit_2(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from devstack.slurm import packages
    from gxwf import slurm_local
    from gxwf.cli import main

    monkeypatch.setattr(packages, "_SEARCH_PATH", str(tmp_path))
    monkeypatch.setattr(packages, "_JWT_PLUGIN_GLOBS", (str(tmp_path / "*.so"),))
    monkeypatch.setattr(slurm_local, "cluster_directory", _no_directory_for_it)

    with pytest.raises(SystemExit) as exited:
        main([*command, "--state-dir", str(tmp_path / "state")])

    assert exited.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("gxwf: error: Slurm is not installed (missing Debian packages: slurmctld slurmd ")
    assert "apt-get install --no-install-recommends" in line
    assert not (tmp_path / "state" / "slurm").exists(), "nothing was started"


def _no_directory_for_it(state_dir: Path) -> None:
    raise AssertionError("a directory was made for a cluster that cannot start")


def test_the_slurm_cluster_fixture_fails_naming_the_packages_never_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devstack.slurm import packages
    from tests.slurm.conftest import start_or_fail

    monkeypatch.setattr(packages, "_SEARCH_PATH", str(tmp_path))

    with pytest.raises(pytest.fail.Exception, match=r"missing Debian packages: slurmctld slurmd slurm-client munge"):
        start_or_fail(tmp_path / "cluster")
