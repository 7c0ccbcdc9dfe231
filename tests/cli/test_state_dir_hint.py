"""Commands that need the running system, when they find none: one line naming the state directory they looked
in (absolute) and how to point at another."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_bad_input import gxwf

NEEDS_THE_SYSTEM = [
    ["events", "tail"],
    ["assets", "list"],
    ["assets", "show", "x"],
    ["handlers", "run"],
    ["runs", "submit", "--", "true"],
    ["dashboard"],
    ["workflow-api"],
    ["edc-ingress"],
]


def assert_points_at(stderr: str, state_dir: Path) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gxwf: error: "), stderr
    assert f"state dir {state_dir.absolute()}," in lines[0]
    assert "--state-dir DIR" in lines[0] and "GXWF_STATE_DIR" in lines[0]


@pytest.mark.parametrize("args", NEEDS_THE_SYSTEM, ids=" ".join)
def test_the_state_dir_looked_at_is_named(args: list[str], tmp_path: Path) -> None:
    # Relative on the command line: the message gives it absolute, as the user's shell resolves it.
    at = args.index("--") if "--" in args else len(args)
    result = gxwf(*args[:at], "--state-dir", "elsewhere", *args[at:], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert_points_at(result.stderr, tmp_path / "elsewhere")
    assert f"looked for {tmp_path / 'elsewhere' / 'endpoints.json'}" in result.stderr


def test_the_state_dir_from_the_environment_is_named(tmp_path: Path) -> None:
    result = gxwf("events", "tail", env={"GXWF_STATE_DIR": "from-env"}, cwd=tmp_path)
    assert result.returncode == 2
    assert_points_at(result.stderr, tmp_path / "from-env")
    assert "GXWF_NATS_URL" in result.stderr


def test_a_broken_endpoints_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "endpoints.json").write_text("{not json")
    result = gxwf("events", "tail", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert f"{tmp_path / 'state' / 'endpoints.json'}: not an endpoints file" in lines[0]
