"""Clients and process checks shared by the devstack tests."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import aioboto3
import psutil

from devstack import StackEndpoints


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
