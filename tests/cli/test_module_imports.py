"""Every gxwf module imports on its own: no import cycle among them, and only the entry point knows gxwf.cli;
no module of a runtime package is over 400 lines."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import gxwf

# One interpreter, fresh for the project: before each module every gxwf module is forgotten, so each is imported
# alone, as a cycle would show (A importing B importing A fails only when A comes first). Third-party and
# lower-layer packages stay loaded: they cannot import gxwf (import-linter's layers), so they cannot be in a
# cycle with it, and loading them once keeps this to seconds instead of a minute of interpreters.
SCRIPT = """
import importlib, json, pkgutil, sys
import gxwf
names = sorted(m.name for m in pkgutil.walk_packages(gxwf.__path__, "gxwf.") if m.name != "gxwf.__main__")
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m == "gxwf" or m.startswith("gxwf.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as error:
        failed.append(f"{name}: {error!r}")
print(json.dumps({"modules": names, "failed": failed}))
"""


def test_every_gxwf_module_imports_alone() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert {"gxwf.cli", "gxwf.commands.up", "gxwf.commands.edc", "gxwf.runtime"} <= set(report["modules"])
    assert report["failed"] == []


def test_only_the_entry_point_imports_the_assembled_cli() -> None:
    # Also imports inside functions: a command reaching back into gxwf.cli was the cycle this layout ended.
    root = Path(gxwf.__file__).parent
    importers = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if "gxwf.cli" in names:
                importers.append(path.relative_to(root).as_posix())
    assert importers == ["__main__.py"]


def _shipped_packages(project: Path) -> list[Path]:
    config = tomllib.loads((project / "pyproject.toml").read_text())
    return [project / name for name in config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]]


def test_no_runtime_module_is_over_400_lines() -> None:
    # Every package a wheel ships (pyproject's hatch `packages`: the server's and the consumer client's in
    # client/), not only gxwf: a module past 400 lines is split along its seams.
    root = Path(gxwf.__file__).parent.parent
    packages = _shipped_packages(root) + _shipped_packages(root / "client")
    assert {root / "gxwf", root / "dashboard", root / "client" / "src" / "gxwf_client"} <= set(packages)
    lines = {
        path.relative_to(root).as_posix(): len(path.read_text().splitlines())
        for package in packages
        for path in package.rglob("*.py")
    }
    assert len(lines) > 100
    assert {name: n for name, n in lines.items() if n > 400} == {}
