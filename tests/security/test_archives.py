"""Attack: directory uploads whose archives are cheap to send and expensive to list.

A 1.4 MB tar.gz of 300,000 directory headers (150 MB of tar once decompressed), and a zip whose central
directory names 200,000 entries. The WorkflowApi runs in this process with its production limit of 10,000
entries, so tracemalloc's peak covers what the server allocated for the request (and the client's few small
buffers): both are refused with 413 within a second, the peak under 10 MB, and nothing of the upload is kept.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import time
import tracemalloc
import zipfile
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext

from adapters.kubernetes_compute import staging
from adapters.mongo_store import MongoStateStore
from gxwf.runtime import Endpoints
from gxwf.settings import Settings
from schemas.inputs import InputDocument
from tests.workflow_api.conftest import Api, api_service, endpoints, js, nc, settings, store

__all__ = ["endpoints", "js", "nc", "settings", "store"]

pytestmark = pytest.mark.servers

MB = 1024 * 1024
# The record layouts zipfile uses, not in its type stubs.
_ZIP: Any = zipfile
FILES_LIMIT = 10_000


@cache
def many_directories_tar_gz(count: int = 300_000) -> bytes:
    """`count` ustar directory headers `d<i>/`: one header made by tarfile, its name and checksum patched."""
    header = tarfile.TarInfo("d/")
    header.type = tarfile.DIRTYPE
    template = bytearray(header.tobuf(format=tarfile.USTAR_FORMAT))
    template[148:156] = b" " * 8  # the checksum is summed with its own field as spaces
    unnamed = sum(template) - sum(b"d/")
    blocks = bytearray()
    for index in range(count):
        name = f"d{index}/".encode()
        block = bytearray(template)
        block[: len(name)] = name
        block[148:156] = b"%06o\0 " % (unnamed + sum(name))
        blocks += block
    blocks += b"\0" * (2 * tarfile.BLOCKSIZE)
    return gzip.compress(bytes(blocks), compresslevel=9)


@cache
def huge_central_directory_zip(count: int = 200_000) -> bytes:
    """One real entry and a central directory of `count` records, all naming it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/", b"")
    data = buffer.getvalue()
    end = data.rindex(_ZIP.stringEndArchive)
    (_, _, _, _, _, size, offset, _) = struct.unpack(_ZIP.structEndArchive, data[end : end + 22])
    record = data[offset : offset + size]
    directory = record * count
    # A zip64 end record: the classic one counts at most 65535 entries.
    end64 = struct.pack(
        _ZIP.structEndArchive64, _ZIP.stringEndArchive64, 44, 45, 45, 0, 0, count, count, len(directory), offset
    )
    locator = struct.pack(_ZIP.structEndArchive64Locator, _ZIP.stringEndArchive64Locator, 0, offset + len(directory), 1)
    classic = struct.pack(_ZIP.structEndArchive, _ZIP.stringEndArchive, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return data[:offset] + directory + end64 + locator + classic


@pytest.fixture
async def api(
    settings: Settings, endpoints: Endpoints, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[Api]:
    """The WorkflowApi with the production limit on entries."""
    service = api_service(
        settings, endpoints, workflow_api_archive_files_limit=FILES_LIMIT, workflow_api_upload_limit_bytes=64 * MB
    )
    url = await service.start()
    yield Api(url, store, service, None, settings)
    await service.stop()


async def _refused_cheaply(api: Api, body: bytes) -> None:
    """Refused within a second (timed without tracing, which slows Python down), then again with tracemalloc on
    for the peak of what was allocated meanwhile."""
    consumer, token = await api.consumer()
    async with api.http(token) as http:
        started = time.monotonic()
        answer = await http.post("/v1/inputs", params={"name": "d", "kind": "directory"}, content=body)
        took = time.monotonic() - started
        tracemalloc.start()
        try:
            again = await http.post("/v1/inputs", params={"name": "d", "kind": "directory"}, content=body)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    for refused in (answer, again):
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "more than 10000 entries" in refused.json()["detail"]
    assert took < 1.0, f"refused after {took:.2f} s"
    # Client and server share this process: the client's copy of the body in flight counts too. What must not
    # happen is the server holding the entries (zipfile's list of 200,000 records alone is over 90 MB).
    assert peak < len(body) + 10 * MB, f"peak {peak / MB:.1f} MB traced for a {len(body) / MB:.1f} MB body"
    assert await api.store.db[InputDocument.collection].count_documents({"consumer_id": consumer}) == 0


async def test_a_tar_of_300k_directories_is_refused_within_a_second(api: Api) -> None:
    body = many_directories_tar_gz()
    assert len(body) < 1.5 * MB
    await _refused_cheaply(api, body)


async def test_a_zip_with_a_huge_central_directory_is_refused_before_it_is_read(api: Api) -> None:
    body = huge_central_directory_zip()
    assert len(zipfile.ZipFile(io.BytesIO(body)).infolist()) == 200_000  # a valid zip, as zipfile reads it
    await _refused_cheaply(api, body)


def test_a_pods_outputs_tar_of_many_directories_is_read_without_keeping_its_members(tmp_path: Path) -> None:
    """The outputs tar a run pod uploads is the consumer's code's: unpacking it keeps no member list, even with an
    entry cap above the archive's (the default cap refuses it: tests/security/test_hardening.py)."""
    archive = tmp_path / "outputs.tar"
    archive.write_bytes(gzip.decompress(many_directories_tar_gz(60_000)))
    tracemalloc.start()
    try:
        found = staging.unpack(archive, tmp_path / "outputs", max_entries=100_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == []
    assert peak < 10 * MB, f"peak {peak / MB:.1f} MB traced"
