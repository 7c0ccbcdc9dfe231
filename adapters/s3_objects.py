"""The object store on S3 through aioboto3; the sha256 of each object travels in its metadata."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import mimetypes
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aioboto3
from botocore.config import Config
from botocore.exceptions import ClientError

from adapters.servers import Servers
from ports.objects import StoredObject

_CHUNK = 8 * 1024 * 1024
# Parts of a streamed upload in flight at once: enough to keep S3 busy while the next part arrives, few enough
# that memory stays at a few parts whatever the object's size.
_PARTS_IN_FLIGHT = 3
_READ_CHUNK = 4 * 1024 * 1024
_READ_RESUMES = 5


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def checksum_header(sha256: str) -> str:
    """`x-amz-checksum-sha256`: the digest base64-encoded, where we keep it as hex."""
    return base64.b64encode(bytes.fromhex(sha256)).decode()


class S3ObjectStore:
    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        access_key: str | None,
        secret_key: str | None,
        region: str = "us-east-1",
    ) -> None:
        self.bucket = bucket
        self._session = aioboto3.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
        )
        self._endpoint = endpoint
        # SigV4 also for presigned URLs (botocore would presign with SigV2 here): it is what S3 accepts in every
        # region, and it lists the headers it covers (`X-Amz-SignedHeaders`), so a PUT without the announced
        # `x-amz-checksum-sha256` is refused rather than its checksum skipped.
        self._config = Config(
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"},
        )
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    @classmethod
    def of(cls, servers: Servers) -> S3ObjectStore:
        """The object store `servers` names, with its bucket, keys and region."""
        return cls(
            servers.s3,
            servers.s3_bucket,
            access_key=servers.s3_access_key,
            secret_key=servers.s3_secret_key,
            region=servers.s3_region,
        )

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

    async def health(self, timeout: float = 2.0) -> str:
        """The string "ok" once the bucket answers, or what went wrong, for readiness endpoints (never raises)."""
        try:
            async with asyncio.timeout(timeout):
                s3 = await self._s3()
                await s3.head_bucket(Bucket=self.bucket)
        except Exception as error:
            return f"error: {type(error).__name__}"
        return "ok"

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

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> StoredObject:
        s3 = await self._s3()
        kind = content_type or "application/octet-stream"
        extra: dict[str, Any] = {"ContentType": kind, "Metadata": {"sha256": sha256} if sha256 else {}}
        digest = hashlib.sha256()
        size = 0
        held: list[bytes] = []
        held_size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        pending: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(_PARTS_IN_FLIGHT)
        numbers = itertools.count(1)
        # Each part is hashed in a thread (hashlib releases the GIL) while the next one arrives; in order.
        hashing: asyncio.Future[None] | None = None

        async def send(number: int, data: bytes) -> None:
            try:
                answer = await s3.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            finally:
                slots.release()

        async def hash_after(previous: asyncio.Future[None] | None, data: bytes) -> None:
            if previous is not None:
                await previous
            await asyncio.to_thread(digest.update, data)

        try:
            async for chunk in chunks:
                size += len(chunk)
                held.append(chunk)
                held_size += len(chunk)
                if held_size < _CHUNK:
                    continue
                if upload_id is None:
                    created = await s3.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
                    upload_id = created["UploadId"]
                data = b"".join(held)
                held, held_size = [], 0
                hashing = asyncio.ensure_future(hash_after(hashing, data))
                await slots.acquire()
                task = asyncio.create_task(send(next(numbers), data))
                pending.add(task)
                task.add_done_callback(pending.discard)
                # Surface a failed part now rather than after the whole body was read.
                for done in [t for t in pending if t.done()]:
                    done.result()
            data = b"".join(held)
            hashing = asyncio.ensure_future(hash_after(hashing, data))
            if upload_id is None:
                await s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
                await hashing
                return StoredObject(key, size, digest.hexdigest(), kind)
            if data:
                await slots.acquire()
                pending.add(asyncio.create_task(send(next(numbers), data)))
            await asyncio.gather(*pending)
            await hashing
            parts.sort(key=lambda part: int(part["PartNumber"]))
            await s3.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            stored = await s3.head_object(Bucket=self.bucket, Key=key)
            if int(stored["ContentLength"]) != size:
                await s3.delete_object(Bucket=self.bucket, Key=key)
                raise OSError(f"s3://{self.bucket}/{key}: stored {stored['ContentLength']} bytes of {size}")
        except BaseException:
            for task in pending:
                task.cancel()
            if hashing is not None:
                hashing.cancel()
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        return StoredObject(key, size, digest.hexdigest(), kind)

    async def head(self, key: str) -> StoredObject | None:
        s3 = await self._s3()
        try:
            head = await s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return StoredObject(
            key, int(head["ContentLength"]), head.get("Metadata", {}).get("sha256"), head.get("ContentType")
        )

    async def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        # A long read can end early without an error (the server closes an idle-looking connection while the
        # consumer of these chunks is slow): the bytes still missing are asked for again from where it stopped.
        s3 = await self._s3()
        position = start
        for attempt in range(_READ_RESUMES + 1):
            extra: dict[str, Any] = {}
            if position or end is not None:
                extra["Range"] = f"bytes={position}-{'' if end is None else end}"
            response = await s3.get_object(Bucket=self.bucket, Key=key, **extra)
            expected = int(response["ContentLength"])
            received = 0
            body = response["Body"]
            try:
                # The socket gives a few dozen KiB per read; handing on about a MiB at a time saves the consumer
                # (an HTTP response) most of its per-chunk work.
                held: list[bytes] = []
                held_size = 0
                while chunk := await body.read(_READ_CHUNK):
                    held.append(chunk)
                    held_size += len(chunk)
                    if held_size >= _READ_CHUNK:
                        received += held_size
                        position += held_size
                        yield b"".join(held)
                        held, held_size = [], 0
                if held:
                    received += held_size
                    position += held_size
                    yield b"".join(held)
            except Exception:
                if attempt == _READ_RESUMES:
                    raise
            finally:
                body.close()
            if received >= expected:
                return
        raise OSError(f"s3://{self.bucket}/{key}: the stream kept ending early at byte {position}")

    async def get_file(self, key: str, path: Path) -> int:
        size = 0
        with path.open("wb") as handle:
            async for chunk in self.read_range(key):
                handle.write(chunk)
                size += len(chunk)
        return size

    async def delete(self, keys: Sequence[str]) -> None:
        s3 = await self._s3()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            await s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    async def presigned_url(
        self,
        method: str,
        key: str,
        *,
        expires_seconds: int,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> str:
        if method not in ("GET", "PUT"):
            raise ValueError(f"presigned {method}: only GET and PUT")
        s3 = await self._s3()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if method == "PUT" and content_type:
            params["ContentType"] = content_type
        if method == "PUT" and sha256:
            # A signed header, not a query parameter: S3 ignores a checksum in a presigned URL's query (SeaweedFS
            # checks it), but checks the header against the body, and the signature makes the header mandatory.
            params["ChecksumSHA256"] = checksum_header(sha256)
        url: str = await s3.generate_presigned_url(
            "get_object" if method == "GET" else "put_object", Params=params, ExpiresIn=expires_seconds
        )
        return url
