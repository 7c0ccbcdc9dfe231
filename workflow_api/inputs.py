"""/v1/inputs: upload files and directories (raw body, multipart, or a presigned PUT), list, describe, delete.

What an upload, a completion and a removal do is in workflow_api.services.uploads; these routes parse, check
what the request itself says, and render.
"""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response

from schemas.inputs import InputDocument, InputState
from workflow_api.auth import AUTHENTICATED, api
from workflow_api.models import InputFile, InputInfo, InputPage, PresignedUpload, PresignedUploadRequest
from workflow_api.pagination import Cursor, Limit, after, next_link
from workflow_api.principals import Principal
from workflow_api.problems import invalid, responses
from workflow_api.services import uploads
from workflow_api.services.uploads import Upload
from workflow_api.uploads import check_declared_length

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
    check_declared_length(request, context.settings.workflow_api_upload_limit_bytes)
    if sha256 and checksum and sha256 != checksum:
        raise invalid("sha256", "the query's sha256 and the X-Checksum-Sha256 header differ")
    if filename in (".", ".."):
        raise invalid("filename", "a file name, not . or ..")
    sent = Upload(
        name=name,
        kind=kind,
        filename=filename,
        expected=sha256 or checksum,
        content_type=request.headers.get("content-type", ""),
        body=request.stream(),
    )
    return info(await uploads.upload(context, principal, sent))


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
    started = await uploads.start_presigned(
        api(request),
        principal,
        name=body.name,
        filename=body.filename,
        size=body.size,
        sha256=body.sha256,
        content_type=body.content_type,
    )
    # The headers the PUT must carry: those the URL's signature covers.
    headers = {"Content-Type": body.content_type} if body.content_type else {}
    if body.sha256:
        headers["x-amz-checksum-sha256"] = base64.b64encode(bytes.fromhex(body.sha256)).decode()
    return PresignedUpload(
        input=info(started.doc),
        url=started.url,
        headers=headers,
        expires_at=started.expires_at,
        complete_url=f"/v1/inputs/{started.doc.id}/complete",
    )


@router.post(
    "/{input_id}/complete",
    summary="Finish a presigned upload: size and sha256 are checked, a mismatch keeps nothing",
    response_model=InputInfo,
    responses=responses(401, 403, 404, 409, 422),
)
async def complete_upload(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> InputInfo:
    principal.require_active("upload inputs")
    return info(await uploads.complete(api(request), principal, input_id))


@router.get("", summary="Your inputs, newest first", response_model=InputPage, responses=responses(401, 403, 422))
async def list_inputs(
    request: Request, limit: int = Limit, cursor: str | None = Cursor, principal: Principal = AUTHENTICATED
) -> InputPage:
    principal.require_active("list inputs")
    found = await api(request).queries.inputs(principal.consumer_id, after=after(cursor), limit=limit)
    return InputPage(items=[info(doc) for doc in found.items], next=next_link(request, found.next))


@router.get(
    "/{input_id}", summary="One input with its files", response_model=InputInfo, responses=responses(401, 403, 404)
)
async def get_input(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> InputInfo:
    principal.require_active("describe inputs")
    return info(await uploads.owned(api(request), principal, input_id), with_files=True)


@router.delete(
    "/{input_id}",
    status_code=204,
    summary="Delete an input and its objects (runs already started keep their staged copy)",
    response_class=Response,
    responses=responses(401, 403, 404),
)
async def delete_input(input_id: str, request: Request, principal: Principal = AUTHENTICATED) -> Response:
    principal.require_active("delete inputs")
    await uploads.remove(api(request), principal, input_id)
    return Response(status_code=204)
