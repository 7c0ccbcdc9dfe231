"""The README's first command, exactly as written, from a fresh copy of this tree with the default state dir:
`make run` creates the venv, starts everything and plays the demo to its last step; Ctrl-C stops it; a second
`make run` on the kept state plays the demo again and nothing from the first is lost."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from pymongo import AsyncMongoClient

from tests.cli.test_up import gone

REPO = Path(__file__).resolve().parents[2]
RUNNING = "Running. Ctrl-C stops everything."
# This machine's pip configuration names package folders that do not exist here; pip says so on every install.
# That is the machine's, not the project's: the only lines of the output allowed to say WARNING.
MACHINE_PIP_NOTICE = re.compile(r"^WARNING: Location '[^']+' is ignored: it is neither a file nor a directory\.$")
TROUBLE = re.compile(r"traceback|exception|warning|error|dead-letter|\bfailed\b", re.IGNORECASE)

pytestmark = pytest.mark.slow


def readme_command(name: str) -> list[str]:
    """The command of the README's opening block that starts with `name`, without its comment."""
    block = REPO.joinpath("README.md").read_text().split("```sh\n", 1)[1].split("```", 1)[0]
    for line in block.splitlines():
        if line.startswith(name):
            return line.split("#", 1)[0].split()
    raise AssertionError(f"the README's first block has no `{name}` command")


def fresh_copy(dest: Path) -> Path:
    """What a clone of this tree would hold (tracked and new files, not what .gitignore leaves out)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def plain_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GXWF_", "VIRTUAL_ENV"))}
    # A shell of someone who has not activated any venv.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/")
    env["COLUMNS"] = "200"
    return env


class Terminal:
    """A command in its own process group, as a shell's foreground job: Ctrl-C reaches every process in it."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=plain_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []

    async def until(self, marker: str, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = await asyncio.to_thread(self.proc.stdout.readline)
            if not line and self.proc.poll() is not None:
                break
            self.lines.append(line)
            if marker in line:
                return "".join(self.lines)
        raise AssertionError(f"{marker!r} not printed; output:\n{''.join(self.lines)}")

    def descendants(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.proc.pid).children(recursive=True)]

    async def ctrl_c(self, timeout: float = 60) -> str:
        os.killpg(self.proc.pid, signal.SIGINT)
        rest, _ = await asyncio.to_thread(self.proc.communicate, timeout=timeout)
        self.lines.append(rest)
        return rest

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)


def trouble(output: str) -> list[str]:
    return [line for line in output.splitlines() if TROUBLE.search(line) and not MACHINE_PIP_NOTICE.match(line.strip())]


async def stored_runs(clone: Path) -> dict[str, str]:
    endpoints = json.loads((clone / ".gxwf" / "endpoints.json").read_text())
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(endpoints["mongo"])
    try:
        return {str(run["_id"]): str(run["state"]) async for run in client["gxwf"]["runs"].find({})}
    finally:
        await client.close()


async def test_make_run_as_the_readme_says_twice_on_the_kept_state(tmp_path: Path) -> None:
    clone = fresh_copy(tmp_path / "gaiax workflows")
    command = readme_command("make run")
    assert command == ["make", "run"]

    first = Terminal(command, clone)
    try:
        output = await first.until(RUNNING, timeout=900)
        servers = first.descendants()
        assert "demo: all 4 steps succeeded" in output, output
        assert trouble(output) == [], output
        downloaded = sorted((clone / ".gxwf" / "demo-results").glob("*/trajectory.png"))
        assert len(downloaded) == 1 and downloaded[0].read_bytes()[:4] == b"\x89PNG"
        runs = await stored_runs(clone)
        assert sorted(runs.values()) == ["succeeded", "succeeded"], runs
        # The command the demo suggests works when pasted into the same shell (its venv is not on the PATH).
        suggested = re.search(r"go on as that consumer: (.+)", output)
        assert suggested is not None, output
        pasted = subprocess.run(
            suggested[1], shell=True, cwd=clone, capture_output=True, text=True, timeout=60, env=plain_env()
        )
        assert pasted.returncode == 0 and "succeeded" in pasted.stdout, pasted
        after = await first.ctrl_c()
    finally:
        first.kill()
    assert "Traceback" not in after and "ERROR" not in after, after
    assert gone(servers, 15) == []

    second = Terminal(command, clone)
    try:
        output = await second.until(RUNNING, timeout=600)
        assert "demo: all 4 steps succeeded" in output, output
        assert trouble(output) == [], output
        again = await stored_runs(clone)
        # The first demo's runs are still there, as they were; the second added its own two.
        assert {k: again[k] for k in runs} == runs
        assert sorted(again.values()) == ["succeeded"] * 4, again
        assert len(sorted((clone / ".gxwf" / "demo-results").glob("*/trajectory.png"))) == 2
        await second.ctrl_c()
    finally:
        second.kill()
