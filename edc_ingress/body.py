"""Reading a request body the way a hostile or broken client cannot exploit: bounded, UTF-8, plain JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from edc_ingress.problems import Problem, malformed_json

_JSON_TYPE = re.compile(r"^application/(?:[A-Za-z0-9.+-]+\+)?json$")
# A \uD800-\uDFFF escape can decode to a lone surrogate, which cannot be re-encoded for the bus.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not _JSON_TYPE.match(media):
        shown = media or "none"
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"content-type: {shown}; send application/json",
            errors=[{"field": "content-type", "message": f"expected application/json, got {shown}"}],
        )


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes whether announced by Content-Length or streamed (chunked)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise malformed_json(f"not UTF-8 at byte {error.start}") from None
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        raise malformed_json(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        # NaN/Infinity, integers beyond Python's digit limit, nesting deeper than the parser's stack
        raise malformed_json(str(error) or type(error).__name__) from None
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise malformed_json("a \\u escape encodes an unpaired surrogate") from None
        except RecursionError:
            raise malformed_json("nested too deeply") from None
    if not isinstance(data, dict):
        raise Problem(
            422,
            "invalid-request",
            "Invalid request",
            "body: Input should be a JSON object",
            errors=[{"field": "body", "message": "Input should be a JSON object"}],
        )
    return data


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload-too-large",
        "Payload too large",
        f"body: larger than the {limit} bytes this ingress accepts (GXWF_EDC_BODY_LIMIT_BYTES)",
        errors=[{"field": "body", "message": f"over {limit} bytes"}],
    )
