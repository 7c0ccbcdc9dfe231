"""The object store's streamed multipart upload and ranged reads, on the session's real S3, past several parts."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from adapters.s3_objects import S3ObjectStore

if TYPE_CHECKING:
    from devstack import StackEndpoints

MIB = 1024 * 1024


async def test_a_multipart_stream_arrives_whole_and_reads_back_in_ranges(stack: StackEndpoints) -> None:
    objects = S3ObjectStore(stack.s3, "gxwf", access_key=stack.s3_access_key, secret_key=stack.s3_secret_key)
    await objects.ensure_bucket()
    data = os.urandom(MIB) * 37 + b"tail"  # more than four 8 MiB parts in flight, and a short last part
    key = f"tests/stream-{uuid.uuid4().hex}"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 300_000):  # arbitrary client chunks, not aligned with the parts
            yield data[start : start + 300_000]

    try:
        stored = await objects.put_stream(key, chunks(), sha256="claimed")
        assert (stored.size, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        head = await objects.head(key)
        assert head is not None and head.size == len(data) and head.sha256 == "claimed"
        whole = b"".join([chunk async for chunk in objects.read_range(key)])
        assert hashlib.sha256(whole).digest() == hashlib.sha256(data).digest()
        middle = b"".join([chunk async for chunk in objects.read_range(key, 9 * MIB - 3, 9 * MIB + 2)])
        assert middle == data[9 * MIB - 3 : 9 * MIB + 3]
        assert await objects.head(f"{key}-missing") is None
    finally:
        await objects.delete([key])
        await objects.close()


async def test_a_failing_stream_leaves_no_object(stack: StackEndpoints) -> None:
    objects = S3ObjectStore(stack.s3, "gxwf", access_key=stack.s3_access_key, secret_key=stack.s3_secret_key)
    await objects.ensure_bucket()
    key = f"tests/broken-{uuid.uuid4().hex}"

    async def chunks() -> AsyncIterator[bytes]:
        yield b"x" * (20 * MIB)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await objects.put_stream(key, chunks())
    assert await objects.head(key) is None
    await objects.close()
