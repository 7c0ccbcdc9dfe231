"""Reading uploads the way a hostile or broken client cannot exploit: bounded in size and memory, paths checked.

Bodies are never held whole: a file goes to the object store part by part as it arrives; an archive is spooled to
scratch disk (zip needs its central directory, at the end), checked, unpacked member by member, and uploaded.
"""

from __future__ import annotations

import collections
import hashlib
import io
import posixpath
import shutil
import struct
import tarfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from workflow_api.problems import Problem, invalid

_COPY_CHUNK = 1024 * 1024
# zipfile's end-record reader (with its zip64 variant) and record layouts: private and not in its type stubs, but
# they decide where ZipFile reads its central directory from, so counting from the same place counts what it would
# load.
_ZIP: Any = zipfile


def too_large(limit: int, what: str = "body") -> Problem:
    return Problem(
        413,
        "payload-too-large",
        f"{what}: more than the limit of {limit} bytes",
        errors=[{"field": what, "message": f"over {limit} bytes"}],
    )


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


async def limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The chunks, failing with 413 as soon as more than `limit` bytes came (announced or not)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            yield chunk


def safe_relative(name: str, field: str) -> str:
    """A relative path inside the input, or 422: no absolute paths, no `..`, no NUL, no drive letters."""
    cleaned = name.replace("\\", "/")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if (
        not parts
        or cleaned.startswith("/")
        or ".." in parts
        or "\x00" in cleaned
        or (len(parts[0]) == 2 and parts[0][1] == ":")
        or len(cleaned) > 1024
    ):
        raise invalid(field, f"{name!r} is not a relative path inside the input (no absolute paths, no '..')")
    return posixpath.join(*parts)


# -- multipart/form-data, parsed as it streams ------------------------------------------------------------------


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None


class MultipartReader:
    """Parts of a multipart body in order; each part's data must be read before asking for the next part."""

    def __init__(self, content_type_header: str, body: AsyncIterator[bytes], limit: int) -> None:
        content_type, options = parse_options_header(content_type_header)
        boundary = options.get(b"boundary")
        if content_type != b"multipart/form-data" or not boundary:
            raise invalid("content-type", "multipart/form-data needs a boundary")
        self._stream = limited(body, limit).__aiter__()
        self._events: collections.deque[tuple[str, Any]] = collections.deque()
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._ended = False
        callbacks: Any = {
            "on_part_begin": self._begin,
            "on_part_data": self._data,
            "on_part_end": lambda: self._events.append(("end", None)),
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self._events.append(("headers", dict(self._headers))),
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _begin(self) -> None:
        self._headers = {}

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field, self._value = b"", b""

    async def _next(self) -> tuple[str, Any]:
        while not self._events:
            if self._ended:
                return ("eof", None)
            try:
                chunk = await self._stream.__anext__()
            except StopAsyncIteration:
                self._ended = True
                self._parser.finalize()
                continue
            try:
                self._parser.write(chunk)
            except Exception as error:
                raise invalid("body", f"malformed multipart body: {error}") from None
        return self._events.popleft()

    async def parts(self) -> AsyncIterator[Part]:
        while True:
            kind, value = await self._next()
            if kind == "eof":
                return
            if kind != "headers":
                continue
            _, options = parse_options_header(value.get(b"content-disposition", b""))
            name = options.get(b"name", b"").decode(errors="replace")
            filename = options.get(b"filename")
            content_type = value.get(b"content-type")
            yield Part(
                name,
                filename.decode(errors="replace") if filename is not None else None,
                content_type.decode(errors="replace") if content_type else None,
            )

    async def data(self) -> AsyncIterator[bytes]:
        """The current part's bytes, up to its end."""
        while True:
            kind, value = await self._next()
            if kind in ("end", "eof"):
                return
            if kind == "data" and value:
                yield value

    async def text(self, limit: int = 4096) -> str:
        buffer = b""
        async for chunk in self.data():
            buffer += chunk
            if len(buffer) > limit:
                raise invalid("body", f"a form field is longer than {limit} bytes")
        return buffer.decode(errors="replace")


# -- archives ---------------------------------------------------------------------------------------------------


async def spool(chunks: AsyncIterator[bytes], path: Path) -> tuple[int, str]:
    """Write the chunks to `path`; returns their size and sha256."""
    digest = hashlib.sha256()
    size = 0
    with path.open("wb") as handle:
        async for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            handle.write(chunk)
    return size, digest.hexdigest()


class ArchiveRejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def problem(self) -> Problem:
        if self.status == 413:
            return Problem(
                413, "payload-too-large", f"body: {self.message}", errors=[{"field": "body", "message": self.message}]
            )
        return invalid("body", self.message)


def _check_member(name: str, seen: set[str]) -> str:
    try:
        relative = safe_relative(name, "body")
    except Problem:
        raise ArchiveRejected(422, f"archive entry {name!r} would land outside the input (absolute or '..')") from None
    if relative in seen:
        raise ArchiveRejected(422, f"archive entry {name!r} appears twice")
    seen.add(relative)
    return relative


def _copy(source: Any, dest: Path, budget: list[int]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise ArchiveRejected(413, "unpacked, the archive is larger than the limit")
            out.write(chunk)


def _zip_entries_within(archive: Path, limit: int) -> None:
    """Refuse a zip whose central directory holds more than `limit` entries, counted record by record before
    zipfile reads it: zipfile.ZipFile loads the whole directory into memory as ZipInfo objects when it opens, and
    the count in the end record is whatever the sender wrote."""
    with archive.open("rb") as handle:
        end = _ZIP._EndRecData(handle)
        if end is None:
            raise ArchiveRejected(422, "the archive is damaged: no zip end record")
        start = end[_ZIP._ECD_LOCATION] - end[_ZIP._ECD_SIZE]
        if end[_ZIP._ECD_SIGNATURE] == _ZIP.stringEndArchive64:
            start -= _ZIP.sizeEndCentDir64 + _ZIP.sizeEndCentDir64Locator
        stop = start + end[_ZIP._ECD_SIZE]
        if start < 0:
            raise ArchiveRejected(422, "the archive is damaged: its central directory lies outside it")
        handle.seek(start)
        count = 0
        while handle.tell() < stop:
            record = handle.read(_ZIP.sizeCentralDir)
            if len(record) != _ZIP.sizeCentralDir or record[:4] != _ZIP.stringCentralDir:
                return  # not a directory record: zipfile refuses the archive as damaged
            count += 1
            if count > limit:
                raise ArchiveRejected(413, f"the archive holds more than {limit} entries (directories count)")
            fields = struct.unpack(_ZIP.structCentralDir, record)
            skip = (
                fields[_ZIP._CD_FILENAME_LENGTH] + fields[_ZIP._CD_EXTRA_FIELD_LENGTH] + fields[_ZIP._CD_COMMENT_LENGTH]
            )
            handle.seek(skip, io.SEEK_CUR)


def _tar_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members one by one, none kept: TarFile.next() appends each to `tar.members`, so a tar of a million
    tiny headers would otherwise be held whole. (Links, which need that list, are refused anyway.)"""
    while (member := tar.next()) is not None:
        cast(Any, tar).members.clear()
        yield member


def unpack(archive: Path, dest: Path, *, max_files: int, max_bytes: int) -> list[str]:
    """Unpack a tar (plain or compressed) or zip archive into `dest` member by member; the relative paths written.

    Refused (ArchiveRejected): entries outside the input (absolute, `..`), links of any kind, devices and FIFOs,
    duplicate entries, more entries (directories count: they cost as much to read) than `max_files`, more
    unpacked bytes than `max_bytes` (counted while copying: a zip bomb's declared sizes are not trusted).
    """
    dest.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    budget = [max_bytes]
    written: list[str] = []
    entries = 0

    def count_entry() -> None:
        nonlocal entries
        entries += 1
        if entries > max_files:
            raise ArchiveRejected(413, f"the archive holds more than {max_files} entries (directories count)")

    try:
        if zipfile.is_zipfile(archive):
            _zip_entries_within(archive, max_files)
            with zipfile.ZipFile(archive) as zipped:
                for info in zipped.infolist():
                    count_entry()
                    if info.is_dir():
                        continue
                    mode = (info.external_attr >> 16) & 0o170000
                    if mode == 0o120000:
                        raise ArchiveRejected(
                            422, f"archive entry {info.filename!r} is a symbolic link; links are not allowed"
                        )
                    if mode not in (0, 0o100000):
                        raise ArchiveRejected(422, f"archive entry {info.filename!r} is not a regular file")
                    relative = _check_member(info.filename, seen)
                    with zipped.open(info) as source:
                        _copy(source, dest / relative, budget)
                    written.append(relative)
            return written
        if not tarfile.is_tarfile(archive):
            raise ArchiveRejected(422, "kind=directory takes a tar, tar.gz, tar.bz2, tar.xz or zip archive")
        with tarfile.open(archive, "r:*") as tar:
            for member in _tar_members(tar):
                count_entry()
                if member.isdir():
                    # Directories are implied by their files' paths; nothing to create for them.
                    continue
                if member.issym() or member.islnk():
                    raise ArchiveRejected(
                        422, f"archive entry {member.name!r} is a link to {member.linkname!r}; links are not allowed"
                    )
                if not member.isreg():
                    raise ArchiveRejected(422, f"archive entry {member.name!r} is a device, FIFO or other special file")
                relative = _check_member(member.name, seen)
                if member.size > budget[0]:
                    raise ArchiveRejected(413, "unpacked, the archive is larger than the limit")
                content = tar.extractfile(member)
                if content is None:
                    raise ArchiveRejected(422, f"archive entry {member.name!r} cannot be read")
                with content:
                    _copy(content, dest / relative, budget)
                written.append(relative)
    except (tarfile.TarError, EOFError, zipfile.BadZipFile, struct.error) as error:
        raise ArchiveRejected(422, f"the archive is damaged: {error}") from None
    return written


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
