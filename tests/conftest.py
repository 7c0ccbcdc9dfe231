"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest_asyncio

from devstack import EmbeddedStack, StackEndpoints


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack() -> AsyncIterator[StackEndpoints]:
    """One set of real servers for the whole run, in a throwaway directory.

    GXWF_NATS_URL, GXWF_MONGO_URL and GXWF_S3_ENDPOINT point the tests at servers of your own instead;
    only the ones not given are started.
    """
    embedded = EmbeddedStack(
        None,
        nats_url=os.environ.get("GXWF_NATS_URL"),
        mongo_url=os.environ.get("GXWF_MONGO_URL"),
        s3_endpoint=os.environ.get("GXWF_S3_ENDPOINT"),
    )
    async with embedded as endpoints:
        yield endpoints
