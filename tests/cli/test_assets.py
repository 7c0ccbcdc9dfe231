"""`gxwf assets`: definitions applied as versions in MongoDB, listed, shown and deleted; bad input refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.cli.test_bad_input import gxwf

if TYPE_CHECKING:
    from devstack import StackEndpoints

ASSETS = Path(__file__).parents[2] / "deploy" / "assets"


def test_apply_makes_a_version_only_when_a_definition_changes(stack: StackEndpoints, tmp_path: Path) -> None:
    env = {"GXWF_MONGO_URL": stack.mongo, "GXWF_MONGO_DATABASE": f"t_{uuid.uuid4().hex[:12]}"}
    folder = tmp_path / "assets"
    folder.mkdir()
    # Two of the shipped definitions: the catalogue's versioning, whatever else deploy/assets holds.
    for name in ("gpu/carla-minimal.yaml", "shell-count.yaml"):
        shutil.copy(ASSETS / name, folder / Path(name).name)

    first = gxwf("assets", "apply", str(folder), env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("new version") == 2
    again = gxwf("assets", "apply", str(folder), env=env, cwd=tmp_path)
    assert again.stdout.count("unchanged") == 2, again.stdout

    changed = folder / "shell-count.yaml"
    changed.write_text(changed.read_text().replace("memory: 256Mi", "memory: 512Mi"))
    gxwf("assets", "apply", str(changed), env=env, cwd=tmp_path)
    listed = [json.loads(line) for line in gxwf("assets", "list", "--json", env=env, cwd=tmp_path).stdout.splitlines()]
    assert {(a["id"], a["version"], a["memory"]) for a in listed} == {
        ("carla-minimal", 1, "16Gi"),
        ("shell-count", 2, "512Mi"),
    }
    # The earlier version stays readable for the deployments and runs that use it.
    old = gxwf("assets", "show", "shell-count", "--version", "1", env=env, cwd=tmp_path)
    assert "version: 1" in old.stdout and "memory: 256Mi" in old.stdout

    assert gxwf("assets", "delete", "shell-count", env=env, cwd=tmp_path).returncode == 0
    listed = [json.loads(line) for line in gxwf("assets", "list", "--json", env=env, cwd=tmp_path).stdout.splitlines()]
    assert [a["id"] for a in listed] == ["carla-minimal"]
    gone = gxwf("assets", "show", "shell-count", env=env, cwd=tmp_path)
    assert gone.returncode == 0 and "deleted: true" in gone.stdout


BAD_YAML = "id: x\ncommand: [a\n"


@pytest.mark.parametrize(
    ("content", "args", "names"),
    [
        (None, ["apply", "missing.yaml"], "missing.yaml: no such file or directory"),
        (BAD_YAML, ["apply", "bad.yaml"], "bad.yaml: not YAML"),
        ("- a list\n", ["apply", "bad.yaml"], "expected a mapping"),
        ("id: Bad_Id\ntitle: t\ncommand: [x]\n", ["apply", "bad.yaml"], "bad.yaml: id: String should match"),
        ("id: ok\ntitle: t\ncommand: [x]\nresources: {gpus: 1}\n", ["apply", "bad.yaml"], "resources.gpus"),
        ("id: ok\ntitle: t\ncommand: [x]\nresources: {memory: lots}\n", ["apply", "bad.yaml"], "resources.memory"),
        ("id: ok\ntitle: t\ncommand: []\n", ["apply", "bad.yaml"], "command"),
        (None, ["show", "x", "--version", "0"], "--version"),
        (None, ["show", "x"], "no mongo server known"),
        (None, ["apply", "."], "no *.yaml asset definitions"),
    ],
)
def test_bad_input(content: str | None, args: list[str], names: str, tmp_path: Path) -> None:
    if content is not None:
        (tmp_path / "bad.yaml").write_text(content)
    result = gxwf("assets", *args, env={"GXWF_STATE_DIR": str(tmp_path / "state")}, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert lines[0].startswith("gxwf: error: ") and names in lines[0], lines[0]


def test_unknown_asset_to_show_or_delete(stack: StackEndpoints, tmp_path: Path) -> None:
    env = {"GXWF_MONGO_URL": stack.mongo, "GXWF_MONGO_DATABASE": f"t_{uuid.uuid4().hex[:12]}"}
    for args, names in ((["show", "nope"], "no asset 'nope'"), (["delete", "nope"], "no asset 'nope' to delete")):
        result = gxwf("assets", *args, env=env, cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1 and names in result.stderr, result.stderr


def test_apply_from_standard_input(stack: StackEndpoints, tmp_path: Path) -> None:
    """deploy/README.md applies definitions in a cluster by `kubectl exec -i ... gxwf assets apply /dev/stdin`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
    env |= {"GXWF_MONGO_URL": stack.mongo, "GXWF_MONGO_DATABASE": f"t_{uuid.uuid4().hex[:12]}"}
    command = [sys.executable, "-m", "gxwf", "assets", "apply", "/dev/stdin"]
    for name in ("shell-count.yaml", "carla-minimal-cpu.yaml"):
        with (ASSETS / name).open() as definition:
            done = subprocess.run(command, stdin=definition, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0 and "new version" in done.stdout, done.stderr
    listed = gxwf("assets", "list", "--json", env=env, cwd=tmp_path).stdout.splitlines()
    assert sorted(json.loads(line)["id"] for line in listed) == ["carla-minimal-cpu", "shell-count"]
    bad = subprocess.run(command, input="id: x\n", env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("gxwf: error: /dev/stdin: "), bad.stderr
