"""A consumer's inputs: uploads (a raw body, multipart parts, an archive, or a presigned PUT completed later),
and their removal.

Objects live under `schemas.names.input_prefix(consumer, input)`. A failed upload (too large, checksum mismatch, a
refused archive, a client gone midway) keeps nothing: its objects and its document are deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from events.envelope import utcnow
from ports.objects import StoredObject
from schemas.inputs import InputDocument, InputState
from schemas.names import input_prefix, presigned_upload_key
from workflow_api.context import ApiContext
from workflow_api.principals import Principal
from workflow_api.problems import Problem, invalid, not_found
from workflow_api.uploads import (
    ArchiveRejected,
    MultipartReader,
    limited,
    remove_tree,
    safe_relative,
    spool,
    too_large,
    unpack,
)


@dataclass(frozen=True)
class Upload:
    """One upload as the route parsed it; `body` is read once, as it arrives."""

    name: str
    kind: str
    filename: str | None
    # The sha256 the client announced, if any.
    expected: str | None
    # The Content-Type header as sent (multipart needs its boundary).
    content_type: str
    body: AsyncIterator[bytes]

    @property
    def media(self) -> str:
        return self.content_type.split(";", 1)[0].strip().lower()


@dataclass(frozen=True)
class PresignedStart:
    doc: InputDocument
    url: str
    expires_at: datetime


async def owned(context: ApiContext, principal: Principal, input_id: str) -> InputDocument:
    doc = await context.store.get(InputDocument, input_id)
    if doc is None or doc.consumer_id != principal.consumer_id:
        raise not_found("input", input_id)
    return doc


async def discard(context: ApiContext, doc_id: str, prefix: str, *also: str) -> None:
    """Nothing of a failed upload is kept: its objects (and `also`: a presigned upload's landing key), then its
    document."""
    found = await context.objects.list(prefix)
    await context.objects.delete([o.key for o in found] + list(also))
    await context.records.delete_input(doc_id)


def _mismatch(field: str, claimed: str, actual: str) -> Problem:
    return invalid(field, f"sha256 mismatch: the client said {claimed}, the bytes received hash to {actual}")


async def upload(context: ApiContext, principal: Principal, sent: Upload) -> InputDocument:
    """Store the body's files and mark the input ready; on any failure nothing stays."""
    limit = context.settings.workflow_api_upload_limit_bytes
    input_id = f"in-{uuid.uuid4().hex[:20]}"
    prefix = input_prefix(principal.consumer_id, input_id)
    doc = InputDocument(
        id=input_id,
        state=InputState.UPLOADING,
        consumer_id=principal.consumer_id,
        name=sent.name,
        kind=sent.kind,
        prefix=prefix,
    )
    await context.store.create(doc, event_id=f"upload:{input_id}")
    try:
        if sent.media == "multipart/form-data":
            files, size, digest = await _multipart(context, sent, prefix)
        elif sent.kind == "directory":
            files, size, digest = await _archive(context, sent, prefix)
        else:
            # A file input is kept as sent, even when it is an archive: only kind=directory unpacks.
            key = prefix + (sent.filename or sent.name)
            stored = await context.objects.put_stream(
                key, limited(sent.body, limit), content_type=sent.media or None, sha256=sent.expected
            )
            if sent.expected and stored.sha256 != sent.expected:
                raise _mismatch("X-Checksum-Sha256", sent.expected, stored.sha256 or "")
            files = [{"path": sent.filename or sent.name, "key": key, "size": stored.size, "sha256": stored.sha256}]
            size, digest = stored.size, stored.sha256
    except (Problem, asyncio.CancelledError, Exception):
        # Shielded: a client that went away cancels this request, and the clean-up must still finish.
        await asyncio.shield(discard(context, input_id, prefix))
        raise
    await context.store.transition(
        InputDocument,
        input_id,
        InputState.READY,
        event_id=f"upload:{input_id}",
        fields={"files": files, "size": size, "sha256": digest},
    )
    return await owned(context, principal, input_id)


async def _multipart(context: ApiContext, sent: Upload, prefix: str) -> tuple[list[dict[str, Any]], int, str | None]:
    limit = context.settings.workflow_api_upload_limit_bytes
    reader = MultipartReader(sent.content_type, sent.body, limit)
    files: list[dict[str, Any]] = []
    claimed = sent.expected
    async for part in reader.parts():
        if part.filename is None:
            if part.name != "sha256":
                raise invalid(f"form.{part.name}", "unknown form field; send file parts and an optional sha256")
            claimed = (await reader.text()).strip().lower()
            continue
        if len(files) >= context.settings.workflow_api_archive_files_limit:
            raise too_large(context.settings.workflow_api_archive_files_limit, "files")
        relative = safe_relative(part.filename, f"form.{part.name}.filename")
        if sent.kind == "file":
            relative = relative.rsplit("/", 1)[-1]
        if any(f["path"] == relative for f in files):
            raise invalid(f"form.{part.name}.filename", f"{relative!r} appears twice")
        key = prefix + relative
        stored = await context.objects.put_stream(key, reader.data(), content_type=part.content_type)
        files.append({"path": relative, "key": key, "size": stored.size, "sha256": stored.sha256})
    if not files:
        raise invalid("body", "no file part in the multipart body")
    if sent.kind == "file" and len(files) > 1:
        raise invalid("kind", f"kind=file takes one file part, got {len(files)}; use kind=directory")
    size = sum(int(f["size"]) for f in files)
    digest = files[0]["sha256"] if len(files) == 1 else None
    if claimed:
        if len(files) != 1:
            raise invalid("form.sha256", "a sha256 field checks one file; this upload has several")
        if claimed != digest:
            raise _mismatch("form.sha256", claimed, str(digest))
    return files, size, digest


async def _archive(context: ApiContext, sent: Upload, prefix: str) -> tuple[list[dict[str, Any]], int, str | None]:
    settings = context.settings
    scratch = context.scratch_dir / uuid.uuid4().hex
    scratch.mkdir(parents=True)
    try:
        archive = scratch / "archive"
        _, digest = await spool(limited(sent.body, settings.workflow_api_upload_limit_bytes), archive)
        if sent.expected and digest != sent.expected:
            raise _mismatch("X-Checksum-Sha256", sent.expected, digest)
        tree = scratch / "tree"
        try:
            written = await asyncio.to_thread(
                unpack,
                archive,
                tree,
                max_files=settings.workflow_api_archive_files_limit,
                max_bytes=settings.workflow_api_archive_bytes_limit,
            )
        except ArchiveRejected as error:
            raise error.problem() from None
        files: list[dict[str, Any]] = []
        for relative in written:
            stored = await context.objects.put_file(prefix + relative, tree / relative)
            files.append({"path": relative, "key": stored.key, "size": stored.size, "sha256": stored.sha256})
        return files, sum(int(f["size"]) for f in files), digest
    finally:
        await asyncio.to_thread(remove_tree, scratch)


async def start_presigned(
    context: ApiContext,
    principal: Principal,
    *,
    name: str,
    filename: str | None,
    size: int,
    sha256: str | None,
    content_type: str | None,
) -> PresignedStart:
    """Record the announced file and hand out a presigned PUT for it; `complete` checks what arrived."""
    limit = context.settings.workflow_api_upload_limit_bytes
    if size > limit:
        raise too_large(limit, "size")
    if filename in (".", ".."):
        raise invalid("filename", "a file name, not . or ..")
    input_id = f"in-{uuid.uuid4().hex[:20]}"
    prefix = input_prefix(principal.consumer_id, input_id)
    path = filename or name
    key = prefix + path
    # The PUT lands beside the input; `complete` copies it in, so a later PUT with the same URL changes nothing a
    # run reads.
    landing = presigned_upload_key(principal.consumer_id, input_id)
    doc = InputDocument(
        id=input_id,
        state=InputState.UPLOADING,
        consumer_id=principal.consumer_id,
        name=name,
        kind="file",
        prefix=prefix,
        size=size,
        sha256=sha256,
        files=[],
        expected={"key": key, "path": path, "size": size, "sha256": sha256, "landing": landing},
    )
    await context.store.create(doc, event_id=f"upload:{input_id}")
    seconds = context.settings.workflow_api_presign_seconds
    # An announced sha256 is signed into the URL: the object store refuses a body that does not hash to it.
    url = await context.objects.presigned_url(
        "PUT", landing, expires_seconds=seconds, content_type=content_type, sha256=sha256
    )
    created = await owned(context, principal, input_id)
    return PresignedStart(created, url, utcnow() + timedelta(seconds=seconds))


async def complete(context: ApiContext, principal: Principal, input_id: str) -> InputDocument:
    """Copy a presigned upload into its input, checking the size and sha256 of the bytes copied (the copy is what
    runs read: what the URL receives afterwards goes nowhere); a mismatch keeps nothing."""
    doc = await owned(context, principal, input_id)
    expected = doc.expected
    if doc.state == InputState.READY:
        return doc
    if doc.state != InputState.UPLOADING or not expected:
        raise Problem(409, "not-a-presigned-upload", f"input {input_id} is not a presigned upload waiting to complete")
    landing = str(expected.get("landing") or expected["key"])
    head = await context.objects.head(landing)
    if head is None:
        raise Problem(
            409, "nothing-uploaded", f"nothing was PUT to the presigned URL of input {input_id} yet; upload, then retry"
        )
    problem: Problem | None = None
    stored: StoredObject | None = None
    if head.size != expected["size"]:
        problem = invalid("size", f"the upload has {head.size} bytes, {expected['size']} were announced")
    elif landing != expected["key"]:
        # Hashed as it is written, so the digest is that of the copy, even if a PUT replaced the landing object
        # meanwhile.
        stored = await context.objects.put_stream(
            expected["key"], context.objects.read_range(landing), content_type=head.content_type
        )
    else:
        hasher = hashlib.sha256()
        async for chunk in context.objects.read_range(landing):
            hasher.update(chunk)
        stored = StoredObject(key=landing, size=head.size, sha256=hasher.hexdigest())
    if stored is not None:
        if stored.size != expected["size"]:
            problem = invalid("size", f"the upload has {stored.size} bytes, {expected['size']} were announced")
        elif expected.get("sha256") and stored.sha256 != expected["sha256"]:
            problem = _mismatch("sha256", expected["sha256"], stored.sha256 or "")
    if problem is not None:
        await discard(context, input_id, doc.prefix, landing)
        raise problem
    assert stored is not None
    if landing != expected["key"]:
        await context.objects.delete([landing])
    files = [{"path": expected["path"], "key": expected["key"], "size": stored.size, "sha256": stored.sha256}]
    await context.store.transition(
        InputDocument,
        input_id,
        InputState.READY,
        event_id=f"complete:{input_id}",
        fields={"files": files, "size": stored.size, "sha256": stored.sha256},
    )
    return await owned(context, principal, input_id)


async def remove(context: ApiContext, principal: Principal, input_id: str) -> None:
    doc = await owned(context, principal, input_id)
    landing = doc.expected.get("landing") if doc.expected else None
    await discard(context, doc.id, doc.prefix, *([str(landing)] if landing else []))
