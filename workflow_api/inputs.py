"""/v1/inputs: upload files and directories (raw body, multipart, or a presigned PUT), list, describe, delete.

Objects live under `inputs/<quoted consumer>/<input id>/`. A failed upload (too large, checksum mismatch, a refused
archive, a client gone midway) keeps nothing: its objects and its document are deleted.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.requests import ClientDisconnect

from events.envelope import utcnow
from schemas.inputs import InputDocument, InputState
from schemas.names import input_prefix
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.context import ApiContext
from workflow_api.models import InputFile, InputInfo, InputPage, PresignedUpload, PresignedUploadRequest
from workflow_api.pagination import Cursor, Limit, next_link, page
from workflow_api.principals import Principal
from workflow_api.problems import Problem, invalid, not_found, responses
from workflow_api.uploads import (
    ArchiveRejected,
    MultipartReader,
    check_declared_length,
    limited,
    remove_tree,
    safe_relative,
    spool,
    too_large,
    unpack,
)

router = APIRouter(prefix="/v1/inputs", tags=["inputs"])

NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
SHA256 = r"^[0-9a-f]{64}$"
_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The file as the raw body; for kind=directory a tar, tar.gz or zip archive; or "
        "multipart/form-data with one file part per file (its filename the path inside the input) and an optional "
        "`sha256` field",
        "content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "application/x-tar": {"schema": {"type": "string", "format": "binary"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}},
                        "sha256": {"type": "string", "pattern": SHA256},
                    },
                }
            },
        },
    }
}


def info(doc: InputDocument, *, with_files: bool = False) -> InputInfo:
    return InputInfo(
        id=doc.id,
        name=doc.name,
        kind="directory" if doc.kind == "directory" else "file",
        state=InputState(doc.state).value,
        size=doc.size,
        sha256=doc.sha256,
        file_count=len(doc.files),
        created_at=doc.created_at,
        files=[InputFile(path=f["path"], size=f["size"], sha256=f.get("sha256")) for f in doc.files]
        if with_files
        else None,
    )


async def owned(context: ApiContext, principal: Principal, input_id: str) -> InputDocument:
    doc = await context.store.get(InputDocument, input_id)
    if doc is None or doc.consumer_id != principal.consumer_id:
        raise not_found("input", input_id)
    return doc


async def discard(context: ApiContext, doc_id: str, prefix: str) -> None:
    """Nothing of a failed upload is kept: its objects, then its document."""
    found = await context.objects.list(prefix)
    await context.objects.delete([o.key for o in found])
    await context.db[InputDocument.collection].delete_one({"_id": doc_id})


def _mismatch(field: str, claimed: str, actual: str) -> Problem:
    return invalid(field, f"sha256 mismatch: the client said {claimed}, the bytes received hash to {actual}")


@router.post(
    "",
    status_code=201,
    summary="Upload an input: a file, or a directory as an archive or multipart parts",
    response_model=InputInfo,
    responses=responses(400, 401, 403, 413, 422),
    openapi_extra=_UPLOAD_BODY,
)
async def upload(
    request: Request,
    name: Annotated[str, Query(pattern=NAME, description="The input's name (what a run start refers to)")],
    kind: Annotated[str, Query(pattern=r"^(file|directory)$")] = "file",
    filename: Annotated[
        str | None, Query(min_length=1, max_length=255, pattern=r"^[^/\\\x00]+$", description="Default: the name")
    ] = None,
    sha256: Annotated[str | None, Query(pattern=SHA256, description="Or the X-Checksum-Sha256 header")] = None,
    checksum: Annotated[str | None, Header(alias="X-Checksum-Sha256", pattern=SHA256)] = None,
    principal: Principal = AUTHENTICATED,
) -> InputInfo:
    principal.require_active("upload inputs")
    context = api(request)
    limit = context.settings.workflow_api_upload_limit_bytes
    check_declared_length(request, limit)
    if sha256 and checksum and sha256 != checksum:
        raise invalid("sha256", "the query's sha256 and the X-Checksum-Sha256 header differ")
    expected = sha256 or checksum
    if filename in (".", ".."):
        raise invalid("filename", "a file name, not . or ..")
    input_id = f"in-{uuid.uuid4().hex[:20]}"
    prefix = input_prefix(principal.consumer_id, input_id)
    doc = InputDocument(
        id=input_id, state=InputState.UPLOADING, consumer_id=principal.consumer_id, name=name, kind=kind, prefix=prefix
    )
    await context.store.create(doc, event_id=f"upload:{input_id}")
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if media == "multipart/form-data":
            files, size, digest = await _multipart(context, request, kind, prefix, expected)
        elif kind == "directory":
            files, size, digest = await _archive(context, request, prefix, expected)
        else:
            # A file input is kept as sent, even when it is an archive: only kind=directory unpacks.
            key = prefix + (filename or name)
            stored = await context.objects.put_stream(
                key, limited(request.stream(), limit), content_type=media or None, sha256=expected
            )
            if expected and stored.sha256 != expected:
                raise _mismatch("X-Checksum-Sha256", expected, stored.sha256 or "")
            files = [{"path": filename or name, "key": key, "size": stored.size, "sha256": stored.sha256}]
            size, digest = stored.size, stored.sha256
    except (Problem, ClientDisconnect, asyncio.CancelledError, Exception):
        await asyncio.shield(discard(context, input_id, prefix))
        raise
    await context.store.transition(
        InputDocument,
        input_id,
        InputState.READY,
        event_id=f"upload:{input_id}",
        fields={"files": files, "size": size, "sha256": digest},
    )
    ready = await owned(context, principal, input_id)
    return info(ready)


async def _multipart(
    context: ApiContext, request: Request, kind: str, prefix: str, expected: str | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    limit = context.settings.workflow_api_upload_limit_bytes
    reader = MultipartReader(request, limit)
    files: list[dict[str, Any]] = []
    claimed = expected
    async for part in reader.parts():
        if part.filename is None:
            if part.name != "sha256":
                raise invalid(f"form.{part.name}", "unknown form field; send file parts and an optional sha256")
            claimed = (await reader.text()).strip().lower()
            continue
        if len(files) >= context.settings.workflow_api_archive_files_limit:
            raise too_large(context.settings.workflow_api_archive_files_limit, "files")
        relative = safe_relative(part.filename, f"form.{part.name}.filename")
        if kind == "file":
            relative = relative.rsplit("/", 1)[-1]
        if any(f["path"] == relative for f in files):
            raise invalid(f"form.{part.name}.filename", f"{relative!r} appears twice")
        key = prefix + relative
        stored = await context.objects.put_stream(key, reader.data(), content_type=part.content_type)
        files.append({"path": relative, "key": key, "size": stored.size, "sha256": stored.sha256})
    if not files:
        raise invalid("body", "no file part in the multipart body")
    if kind == "file" and len(files) > 1:
        raise invalid("kind", f"kind=file takes one file part, got {len(files)}; use kind=directory")
    size = sum(int(f["size"]) for f in files)
    digest = files[0]["sha256"] if len(files) == 1 else None
    if claimed:
        if len(files) != 1:
            raise invalid("form.sha256", "a sha256 field checks one file; this upload has several")
        if claimed != digest:
            raise _mismatch("form.sha256", claimed, str(digest))
    return files, size, digest


async def _archive(
    context: ApiContext, request: Request, prefix: str, expected: str | None
) -> tuple[list[dict[str, Any]], int, str | None]:
    settings = context.settings
    scratch = context.scratch_dir / uuid.uuid4().hex
    scratch.mkdir(parents=True)
    try:
        archive = scratch / "archive"
        _, digest = await spool(limited(request.stream(), settings.workflow_api_upload_limit_bytes), archive)
        if expected and digest != expected:
            raise _mismatch("X-Checksum-Sha256", expected, digest)
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


@router.post(
    "/uploads",
    status_code=201,
    summary="Start a presigned upload of a big file: PUT it to the URL, then POST complete_url",
    response_model=PresignedUpload,
    responses=responses(401, 403, 413, 422),
)
async def presigned_upload(
    body: PresignedUploadRequest, request: Request, principal: Principal = AUTHENTICATED
) -> PresignedUpload:
    principal.require_active("upload inputs")
    context = api(request)
    limit = context.settings.workflow_api_upload_limit_bytes
    if body.size > limit:
        raise too_large(limit, "size")
    if body.filename in (".", ".."):
        raise invalid("filename", "a file name, not . or ..")
    input_id = f"in-{uuid.uuid4().hex[:20]}"
    prefix = input_prefix(principal.consumer_id, input_id)
    filename = body.filename or body.name
    key = prefix + filename
    doc = InputDocument(
        id=input_id,
        state=InputState.UPLOADING,
        consumer_id=principal.consumer_id,
        name=body.name,
        kind="file",
        prefix=prefix,
        size=body.size,
        sha256=body.sha256,
        files=[],
        expected={"key": key, "path": filename, "size": body.size, "sha256": body.sha256},
    )
    await context.store.create(doc, event_id=f"upload:{input_id}")
    seconds = context.settings.workflow_api_presign_seconds
    url = await context.objects.presigned_url("PUT", key, expires_seconds=seconds, content_type=body.content_type)
    created = await owned(context, principal, input_id)
    return PresignedUpload(
        input=info(created),
        url=url,
        headers={"Content-Type": body.content_type} if body.content_type else {},
        expires_at=utcnow() + timedelta(seconds=seconds),
        complete_url=f"/v1/inputs/{input_id}/complete",
    )


@router.post(
    "/{input_id}/complete",
    summary="Finish a presigned upload: size and sha256 are checked, a mismatch keeps nothing",
    response_model=InputInfo,
    responses=responses(401, 403, 404, 409, 422),
)
async def complete_upload(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> InputInfo:
    principal.require_active("upload inputs")
    context = api(request)
    doc = await owned(context, principal, input_id)
    expected = doc.expected
    if doc.state == InputState.READY:
        return info(doc)
    if doc.state != InputState.UPLOADING or not expected:
        raise Problem(409, "not-a-presigned-upload", f"input {input_id} is not a presigned upload waiting to complete")
    head = await context.objects.head(expected["key"])
    if head is None:
        raise Problem(
            409, "nothing-uploaded", f"nothing was PUT to the presigned URL of input {input_id} yet; upload, then retry"
        )
    problem: Problem | None = None
    digest: str | None = None
    if head.size != expected["size"]:
        problem = invalid("size", f"the upload has {head.size} bytes, {expected['size']} were announced")
    else:
        hasher = hashlib.sha256()
        async for chunk in context.objects.read_range(expected["key"]):
            hasher.update(chunk)
        digest = hasher.hexdigest()
        if expected.get("sha256") and digest != expected["sha256"]:
            problem = _mismatch("sha256", expected["sha256"], digest)
    if problem is not None:
        await discard(context, input_id, doc.prefix)
        raise problem
    files = [{"path": expected["path"], "key": expected["key"], "size": head.size, "sha256": digest}]
    await context.store.transition(
        InputDocument,
        input_id,
        InputState.READY,
        event_id=f"complete:{input_id}",
        fields={"files": files, "size": head.size, "sha256": digest},
    )
    return info(await owned(context, principal, input_id))


@router.get("", summary="Your inputs, newest first", response_model=InputPage, responses=responses(401, 403, 422))
async def list_inputs(
    request: Request, limit: int = Limit, cursor: str | None = Cursor, principal: Principal = AUTHENTICATED
) -> InputPage:
    principal.require_active("list inputs")
    context = api(request)
    raws, next_cursor = await page(
        context.db[InputDocument.collection], {"consumer_id": principal.consumer_id}, cursor, limit
    )
    return InputPage(
        items=[info(InputDocument.model_validate(raw)) for raw in raws], next=next_link(request, next_cursor)
    )


@router.get(
    "/{input_id}", summary="One input with its files", response_model=InputInfo, responses=responses(401, 403, 404)
)
async def get_input(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> InputInfo:
    principal.require_active("describe inputs")
    return info(await owned(api(request), principal, input_id), with_files=True)


@router.delete(
    "/{input_id}",
    status_code=204,
    summary="Delete an input and its objects (runs already started keep their staged copy)",
    response_class=Response,
    responses=responses(401, 403, 404),
)
async def delete_input(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> Response:
    principal.require_active("delete inputs")
    context = api(request)
    doc = await owned(context, principal, input_id)
    await discard(context, doc.id, doc.prefix)
    return Response(status_code=204)
