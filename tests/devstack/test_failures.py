"""Servers that cannot start or stop running: one clear line, and no process left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from devstack import EmbeddedStack, StackEndpoints, StackError
from tests.devstack.helpers import child_pids


def assert_one_line(error: pytest.ExceptionInfo[StackError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


async def test_port_taken_by_another_program(stack: StackEndpoints) -> None:
    before = child_pids()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        embedded = EmbeddedStack(None, ports={"nats": port}, mongo_url=stack.mongo, s3_endpoint=stack.s3)
        with pytest.raises(StackError) as error:
            await embedded.start()
    message = assert_one_line(error)
    assert message.startswith("nats exited with code 1 during start-up")
    assert f"127.0.0.1:{port}" in message
    assert "address already in use" in message
    assert child_pids() <= before


async def test_program_that_is_not_executable(stack: StackEndpoints, tmp_path: Path) -> None:
    """The others, here NATS, are stopped again when one server cannot be started."""
    corrupt = tmp_path / "secantusd-py"
    corrupt.write_bytes(b"\x7fELF garbage")
    corrupt.chmod(0o755)
    before = child_pids()
    embedded = EmbeddedStack(None, binaries={"mongo": corrupt}, s3_endpoint=stack.s3)
    with pytest.raises(StackError) as error:
        await embedded.start()
    assert assert_one_line(error) == f"secantusd could not be started ({corrupt}): Exec format error"
    assert child_pids() <= before
    assert embedded.state_dir is None


async def test_server_that_never_becomes_ready(stack: StackEndpoints, tmp_path: Path) -> None:
    hanging = tmp_path / "nats-server"
    hanging.write_text("#!/bin/sh\necho 'waiting for a disk that never comes'\nexec sleep 60\n")
    hanging.chmod(0o755)
    before = child_pids()
    embedded = EmbeddedStack(
        None, binaries={"nats": hanging}, mongo_url=stack.mongo, s3_endpoint=stack.s3, ready_timeout=1.0
    )
    with pytest.raises(StackError) as error:
        await embedded.start()
    message = assert_one_line(error)
    assert message.startswith("nats did not become ready within 1s: waiting for a disk that never comes")
    assert "/healthz" in message
    assert child_pids() <= before


async def test_missing_program_names_the_fix(stack: StackEndpoints, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.executable", "/nonexistent/bin/python")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StackError) as error:
        await EmbeddedStack(None, mongo_url=stack.mongo, s3_endpoint=stack.s3).start()
    assert assert_one_line(error) == "nats-server not found in /nonexistent/bin or on PATH: run `make venv`"


async def test_server_dying_ends_the_wait_with_its_name(stack: StackEndpoints) -> None:
    # Without restarts (tests/devstack/test_supervision.py has them).
    embedded = EmbeddedStack(None, mongo_url=stack.mongo, s3_endpoint=stack.s3, restarts=None)
    async with embedded as endpoints:
        os.kill(endpoints.pids["nats"], signal.SIGKILL)
        with pytest.raises(StackError) as error:
            await asyncio.wait_for(embedded.wait_until_signalled(), 10)
    assert assert_one_line(error).startswith("nats was killed by SIGKILL unexpectedly")
