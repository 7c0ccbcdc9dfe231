"""The gxwf commands we suggest work when pasted into the shell that started gxwf."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gxwf.program import program


@pytest.fixture(autouse=True)
def decided_afresh() -> None:
    program.cache_clear()


def make_gxwf(folder: Path) -> Path:
    folder.mkdir(parents=True)
    script = folder / "gxwf"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_the_venv_path_when_gxwf_is_not_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_gxwf(tmp_path / "my project" / ".venv" / "bin")
    monkeypatch.chdir(tmp_path / "my project")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setattr(sys, "argv", [".venv/bin/gxwf", "up"])
    assert program() == ".venv/bin/gxwf"


def test_plain_gxwf_when_the_path_finds_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = make_gxwf(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin")
    monkeypatch.setattr(sys, "argv", [str(script), "up"])
    assert program() == "gxwf"


def test_another_gxwf_on_the_path_is_not_taken_for_this_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_gxwf(tmp_path / "elsewhere")
    mine = make_gxwf(tmp_path / "with space")
    monkeypatch.setenv("PATH", f"{tmp_path / 'elsewhere'}:/usr/bin")
    monkeypatch.setattr(sys, "argv", [str(mine), "up"])
    assert program() == f"'{mine}'"


def test_python_dash_m(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/somewhere/gxwf/__main__.py", "up"])
    assert program().endswith(" -m gxwf")
