"""Clients and process checks shared by the devstack tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import nats
import psutil
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from devstack import StackEndpoints
from events.permissions import connect_options
from events.servers import nats_servers


@asynccontextmanager
async def s3_client(endpoints: StackEndpoints) -> AsyncIterator[Any]:
    """A client of the stack's S3 with the keys the stack generated."""
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=endpoints.s3,
        aws_access_key_id=endpoints.s3_access_key,
        aws_secret_access_key=endpoints.s3_secret_key,
        region_name="us-east-1",
    ) as client:
        yield client


def child_pids() -> set[int]:
    return {child.pid for child in psutil.Process().children(recursive=True)}


def identities(pids: Iterable[int]) -> dict[int, float]:
    """pid -> start time, so a pid reused by an unrelated process later is not mistaken for ours."""
    return {pid: psutil.Process(pid).create_time() for pid in pids}


def running(pid: int, started: float) -> bool:
    try:
        process = psutil.Process(pid)
        return bool(process.create_time() == started and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def still_running(processes: dict[int, float], timeout: float) -> list[int]:
    """The pids among `processes` still running after up to `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in processes if running(pid, processes[pid])]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


async def connect(url: str, first: int) -> Client:
    """A client of the cluster given every node, trying node `first` (0-based) first."""
    options = connect_options(url)
    servers = options.pop("servers")
    servers = servers[first:] + servers[:first]
    return await nats.connect(servers=servers, dont_randomize=True, reconnect_time_wait=0.2, **options)


def node_of(nc: Client, cluster: StackEndpoints) -> int:
    """The 0-based node the client is connected to."""
    assert nc.connected_url is not None
    ports = [int(server.rsplit(":", 1)[1]) for server in nats_servers(cluster.nats)]
    return ports.index(nc.connected_url.port or 0)


async def publish_until_acked(js: JetStreamContext, subject: str, data: bytes, msg_id: str) -> int:
    """Publish as a careful client does while the cluster fails over: again on no answer (same message id, so
    JetStream keeps one). Returns the stream sequence."""
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            ack = await js.publish(subject, data, timeout=2, headers={"Nats-Msg-Id": msg_id})
            return ack.seq
        except (
            TimeoutError,
            nats.errors.TimeoutError,
            nats.errors.NoRespondersError,
            NoStreamResponseError,
            ServiceUnavailableError,
        ):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
