"""A server that dies while the stack runs comes back on its ports with its data; one that cannot, ends the stack
with one line saying which and why."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nats
import pytest
from nats.js.api import StreamConfig
from pymongo import AsyncMongoClient

from devstack import EmbeddedStack, StackEndpoints, StackError
from devstack.binaries import find_binary
from devstack.restarts import RestartPolicy
from tests.devstack.helpers import s3_client

QUICK = RestartPolicy(delays=(0.2,), limit=2, window_seconds=300)


@asynccontextmanager
async def supervised(embedded: EmbeddedStack) -> AsyncIterator[asyncio.Task[None]]:
    """The stack started and its wait running (which is what supervises), stopped on exit."""
    await embedded.start()
    waiting = asyncio.create_task(embedded.wait_until_signalled())
    try:
        yield waiting
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await embedded.stop()


async def until(check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.2)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


async def test_each_server_killed_comes_back_on_its_ports_with_its_data(tmp_path: Path) -> None:
    said: list[str] = []
    embedded = EmbeddedStack(tmp_path / "state", say=said.append)
    async with supervised(embedded) as waiting:
        first = embedded.endpoints
        assert first is not None
        nc = await nats.connect(first.nats, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        await nc.jetstream().add_stream(StreamConfig(name="KEPT", subjects=["kept.>"]))
        await nc.jetstream().publish("kept.one", b"in the stream")
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(first.mongo)
        await mongo.devstack.kept.insert_one({"_id": "one"})
        # secantusd loses acknowledged writes still in its buffer when killed: give it time to write them.
        await asyncio.sleep(2)
        async with s3_client(first) as s3:
            await s3.put_object(Bucket=first.s3_bucket, Key="kept.txt", Body=b"in the bucket")

        for role, name in (("nats", "nats"), ("mongo", "secantusd"), ("s3", "seaweedfs")):
            before = embedded.endpoints
            assert before is not None
            pid = before.pids[role]
            os.kill(pid, signal.SIGKILL)

            async def back(role: str = role, pid: int = pid) -> bool:
                now = embedded.endpoints
                return now is not None and now.pids[role] != pid

            await until(back, 90)
            after = embedded.endpoints
            assert after is not None
            # The same URLs: clients reconnect to where they were.
            assert (after.nats, after.mongo, after.s3) == (first.nats, first.mongo, first.s3)
            assert f"{name} (pid {pid}) died (signal SIGKILL); restarting on " in "\n".join(said), said
            assert any(line.startswith(f"{name} is back after ") for line in said), said
            assert not waiting.done()

        message = await nc.jetstream().get_msg("KEPT", 1)
        assert message.data == b"in the stream"
        await nc.close()
        assert await mongo.devstack.kept.find_one({"_id": "one"}) == {"_id": "one"}
        await mongo.close()
        async with s3_client(embedded.endpoints) as s3:  # type: ignore[arg-type]
            response = await s3.get_object(Bucket=first.s3_bucket, Key="kept.txt")
            assert await response["Body"].read() == b"in the bucket"
            # SeaweedFS's filer and S3 gateway are back too: the bucket takes a new object.
            await s3.put_object(Bucket=first.s3_bucket, Key="after.txt", Body=b"written after the restart")
    restart_lines = [line for line in said if "restarting on" in line]
    assert len(restart_lines) == 3 and all("attempt 1 of 5" in line for line in restart_lines), said
    assert all("\n" not in line for line in said)


async def test_a_port_taken_meanwhile_ends_the_stack_with_one_line(stack: StackEndpoints) -> None:
    said: list[str] = []
    embedded = EmbeddedStack(None, mongo_url=stack.mongo, s3_endpoint=stack.s3, say=said.append, restarts=QUICK)
    async with supervised(embedded) as waiting:
        endpoints = embedded.endpoints
        assert endpoints is not None
        port = port_of(endpoints.nats)
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            os.kill(endpoints.pids["nats"], signal.SIGKILL)
            # Taken before the restart's first delay is over.
            await until(lambda: _bind(squatter, port), 5)
            squatter.listen()
            with pytest.raises(StackError) as error:
                await asyncio.wait_for(waiting, 60)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("nats could not be brought back: nats: one of its ports"), message
    assert f"{port}" in message and "address already in use" in message.lower(), message


async def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True


async def test_a_program_that_fails_after_its_first_start_ends_the_stack_with_why(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    # nats-server, the first time; then a program that fails at once, as a broken upgrade would.
    started = tmp_path / "started-once"
    wrapper = tmp_path / "nats-server"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ -e "{started}" ]; then echo "fatal: the binary is broken" >&2; exit 3; fi\n'
        f'touch "{started}"\n'
        f'exec "{find_binary("nats-server")}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    said: list[str] = []
    embedded = EmbeddedStack(
        None,
        mongo_url=stack.mongo,
        s3_endpoint=stack.s3,
        binaries={"nats": wrapper},
        say=said.append,
        restarts=QUICK,
    )
    async with supervised(embedded) as waiting:
        endpoints = embedded.endpoints
        assert endpoints is not None
        os.kill(endpoints.pids["nats"], signal.SIGKILL)
        with pytest.raises(StackError) as error:
            await asyncio.wait_for(waiting, 60)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("nats could not be brought back (2 restarts within 300 s used): "), message
    assert "exited with code 3 during start-up" in message and "the binary is broken" in message, message
    assert [line.split(":")[0].split(" (")[0] for line in said] == ["nats"] * 4, said
