from __future__ import annotations

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
