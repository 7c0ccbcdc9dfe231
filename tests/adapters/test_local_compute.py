"""The local backend looks at its runs (records on disk, every process in /proc) from worker threads: the watcher
asks for every active run's status on every pass, and the loop those calls come from also acks, heartbeats and
ships logs for every other run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters import local_compute, run_files
from adapters.local_compute import LocalProcessBackend
from events.payloads.run import RunSpec
from ports.compute import WorkloadPhase


def _spy(calls: list[tuple[str, int]], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append((name, threading.get_ident()))
        return function(*args, **kwargs)

    return recorded


async def test_status_follow_stop_and_release_do_their_file_and_proc_io_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop_thread = threading.get_ident()
    calls: list[tuple[str, int]] = []
    monkeypatch.setattr(local_compute, "_run_processes", _spy(calls, "_run_processes", local_compute._run_processes))
    for name in ("read_int", "read_span"):
        monkeypatch.setattr(run_files, name, _spy(calls, name, getattr(run_files, name)))
    monkeypatch.setattr(LocalProcessBackend, "_alive", staticmethod(_spy(calls, "_alive", LocalProcessBackend._alive)))
    backend = LocalProcessBackend(tmp_path / "runs", stop_grace_seconds=1.0)
    await backend.start("busy", RunSpec(command=["/bin/sh", "-c", "echo started; sleep 60"]), {})
    calls.clear()  # starting is not what this test is about

    for _ in range(20):
        assert (await backend.status("busy")).phase is WorkloadPhase.RUNNING
    follow = backend.follow_log("busy", attempt=1)
    assert await anext(follow) == b"started\n"
    await follow.aclose()
    assert await backend.stop("busy")
    assert (await backend.status("busy")).phase is not WorkloadPhase.RUNNING
    assert await backend.release("consumer", ["busy"])

    looked = {name for name, _ in calls}
    assert looked == {"_run_processes", "read_int", "read_span", "_alive"}, "the spies saw every kind of look"
    on_loop = sorted({name for name, thread in calls if thread == loop_thread})
    assert not on_loop, f"blocking I/O on the event loop: {on_loop}"


def test_no_known_group_never_matches_kernel_threads(tmp_path: Path) -> None:
    # Kernel threads are in process group 0 and, read as root, have an empty environment.
    proc = tmp_path / "proc"
    for pid, stat, environ in [
        ("2", "2 (kthreadd) S 0 0 0 0 -1", b""),
        ("77", "77 (sh) S 1 77 77 0 -1", b"PATH=/bin\0GXWF_RUN_ID=r-1\0"),
        ("78", "78 (sleep) Z 77 77 77 0 -1", b"GXWF_RUN_ID=r-1\0"),
    ]:
        (proc / pid).mkdir(parents=True)
        (proc / pid / "stat").write_text(stat)
        (proc / pid / "environ").write_bytes(environ)
    assert local_compute._run_processes("r-1", 0, proc) == [77]
    assert local_compute._run_processes("r-2", 0, proc) == []
    assert local_compute._run_processes("r-2", 77, proc) == [77]
