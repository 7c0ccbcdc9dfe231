"""The object store on S3 through aioboto3; the sha256 of each object travels in its metadata."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ports.objects import StoredObject

_CHUNK = 8 * 1024 * 1024


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class S3ObjectStore:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
    ) -> None:
        self.bucket = bucket
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._endpoint = endpoint
        self._config = Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"})
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _s3(self) -> Any:
        # One client for the process: creating one per call costs more than most small uploads.
        if self._client is None:
            self._client = await self._stack.enter_async_context(
                self._session.client("s3", endpoint_url=self._endpoint, config=self._config)
            )
        return self._client

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def ensure_bucket(self) -> None:
        s3 = await self._s3()
        try:
            await s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            with contextlib.suppress(ClientError):
                await s3.create_bucket(Bucket=self.bucket)

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        # Hash first (in a thread: files can be large), so the checksum is stored with the object.
        sha256, size = await asyncio.to_thread(_sha256_of, path)
        kind = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        s3 = await self._s3()
        with path.open("rb") as handle:
            await s3.upload_fileobj(
                handle, self.bucket, key, ExtraArgs={"ContentType": kind, "Metadata": {"sha256": sha256}}
            )
        return StoredObject(key, size, sha256, kind)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        sha256 = hashlib.sha256(data).hexdigest()
        kind = content_type or "application/octet-stream"
        s3 = await self._s3()
        await s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=kind, Metadata={"sha256": sha256})
        return StoredObject(key, len(data), sha256, kind)

    async def get_bytes(self, key: str) -> bytes:
        s3 = await self._s3()
        response = await s3.get_object(Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data

    async def list(self, prefix: str) -> list[StoredObject]:
        s3 = await self._s3()
        found: list[StoredObject] = []
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                head = await s3.head_object(Bucket=self.bucket, Key=item["Key"])
                found.append(
                    StoredObject(
                        item["Key"], int(item["Size"]), head.get("Metadata", {}).get("sha256"), head.get("ContentType")
                    )
                )
        return found
