"""The consumer's client is a distribution of its own: a consumer installs only it, and it works.

Both wheels are built as a release would build them; the client's goes into a fresh virtual environment with
nothing of the server, whose Python then runs a whole run against the real WorkflowApi."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.workflow_api.conftest import Api

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _wheel(source: Path, into: Path) -> Path:
    # No build isolation: the pinned hatchling of the development environment builds both, offline.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(into), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = into.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("wheels")
    return _wheel(REPO, root / "server"), _wheel(REPO / "client", root / "client")


@pytest.fixture(scope="module")
def consumer_python(wheels: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the client wheel (and its command line's extra) and their dependencies only."""
    venv = tmp_path_factory.mktemp("consumer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{wheels[1]}[cli]"],
        check=True,
        capture_output=True,
    )
    return python


def _files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _names(wheel: Path) -> set[str]:
    return {name.split("/", 1)[0] for name in _files(wheel)}


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(metadata).decode()).get_all("Requires-Dist") or []


def test_the_server_wheel_carries_no_test_doubles_and_no_client(wheels: tuple[Path, Path]) -> None:
    server, _ = wheels
    names = _names(server)
    assert {"handlers", "workflow_api", "gxwf", "dashboard"} <= names
    assert not names & {"fakekube", "inprocess", "tests", "gxwf_client", "workflow_client"}
    assert "adapters/mongo_store.py" in _files(server) and "adapters/memory_store.py" not in _files(server)
    assert "gaiax-workflows-client[cli]==0.1.0" in _requires(server)


def test_the_client_wheel_is_the_client_and_its_two_dependencies(wheels: tuple[Path, Path]) -> None:
    _, client = wheels
    assert {n for n in _names(client) if not n.endswith(".dist-info")} == {"gxwf_client"}
    requires = _requires(client)
    # The library needs httpx and pydantic; the command line (the `cli` extra) adds Typer, Rich and PyYAML.
    assert sorted(r for r in requires if ";" not in r) == ["httpx==0.28.1", "pydantic==2.14.4"]
    extra = sorted(r.split(";")[0].strip().lower() for r in requires if "extra ==" in r and "cli" in r)
    assert extra == ["pyyaml==6.0.4", "rich==15.0.0", "typer==0.29.2"]


def test_the_consumer_environment_has_nothing_of_the_server(consumer_python: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json;"
        "print(json.dumps({m: importlib.util.find_spec(m) is not None for m in "
        "['gxwf_client', 'events', 'handlers', 'workflow_api', 'gxwf', 'nats', 'pymongo', 'faststream']}))"
    )
    # Run outside the checkout: `python -c` puts the working directory first on the path.
    ran = subprocess.run([str(consumer_python), "-c", probe], check=True, capture_output=True, cwd=tmp_path)
    found = json.loads(ran.stdout)
    assert found.pop("gxwf_client") is True
    assert not any(found.values()), found


_SESSION = """
import asyncio, sys
from pathlib import Path
from gxwf_client import WorkflowClient

async def main(url, token, text, dest):
    async with WorkflowClient(url, token) as api:
        assert [a.id for a in await api.assets()] == ["count-lines", "sleeper"]
        uploaded = await api.upload_file(Path(text), "text")
        accepted = await api.start_run("count-lines", parameters={"COUNT": 1}, inputs={"text": uploaded.id})
        status = await api.wait(accepted.run_id, timeout=60)
        await api.download(accepted.run_id, "count.txt", Path(dest))
        print(status.state)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_consumer_with_only_the_client_runs_a_workflow(api: Api, consumer_python: Path, tmp_path: Path) -> None:
    _, token = await api.consumer()
    text, dest = tmp_path / "text.txt", tmp_path / "count.txt"
    text.write_text("a\nb\nc\n")
    proc = await asyncio.create_subprocess_exec(
        str(consumer_python),
        "-c",
        _SESSION,
        api.url,
        token,
        str(text),
        str(dest),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().split() == ["succeeded"]
    assert dest.read_text().strip() == "3"


async def _gxwf_client(python: Path, cwd: Path, url: str, token: str, *args: str) -> tuple[int, bytes, bytes]:
    """`gxwf-client ARGS` from the consumer's environment, with nothing of this machine's configuration."""
    proc = await asyncio.create_subprocess_exec(
        str(python.parent / "gxwf-client"),
        *args,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GXWF_CLIENT_URL": url, "GXWF_CLIENT_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_the_consumer_command_line_comes_with_the_client(api: Api, consumer_python: Path, tmp_path: Path) -> None:
    _, token = await api.consumer()
    code, out, err = await _gxwf_client(consumer_python, tmp_path, api.url, token, "assets", "list", "--json")
    assert code == 0, err.decode()
    assert [a["id"] for a in json.loads(out)] == ["count-lines", "sleeper"]

    code, out, err = await _gxwf_client(consumer_python, tmp_path, api.url, token, "run", "status", "no-such-run")
    assert code != 0 and err.decode().startswith("gxwf-client: ") and "Traceback" not in err.decode()
