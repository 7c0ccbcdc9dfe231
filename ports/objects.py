from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None
    content_type: str | None = None


class ObjectStore(Protocol):
    """Where inputs, outputs, logs and manifests live (any S3)."""

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        """Upload streamed from disk (bounded memory); the sha256 is computed on the way and kept with it."""
        ...

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> StoredObject: ...

    async def get_bytes(self, key: str) -> bytes: ...

    async def list(self, prefix: str) -> list[StoredObject]: ...

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> StoredObject:
        """Upload chunks as they come (multipart, a few parts in memory at most); the returned sha256 is computed on
        the way. `sha256` (the client's claim, not yet verified) goes into the object's metadata."""
        ...

    async def head(self, key: str) -> StoredObject | None:
        """The object's size, metadata sha256 and content type; None when there is no such object."""
        ...

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The object's bytes from `start` to `end` (inclusive), streamed in chunks."""
        ...

    async def get_file(self, key: str, path: Path) -> int:
        """Download to `path` streamed (bounded memory); returns the size written."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete these objects; missing ones are no error."""
        ...

    async def presigned_url(
        self,
        method: str,
        key: str,
        *,
        expires_seconds: int,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> str:
        """A URL that allows GET (download) or PUT (upload) of this one key until it expires. For a PUT, `sha256`
        (hex) binds the body: the signature covers it as `x-amz-checksum-sha256`, which the store checks against
        what is sent."""
        ...
