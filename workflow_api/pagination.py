"""Keyset pagination, newest first: the cursor is the last item's (created_at, id), opaque to the client; the
query ports take it decoded (ports.queries.PageKey)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from urllib.parse import urlencode

from fastapi import Query, Request

from ports.queries import PageKey
from workflow_api.problems import invalid

Limit = Query(50, ge=1, le=200, description="Items per page")
Cursor = Query(None, max_length=512, description="The `next` link's cursor")


def encode_cursor(created_at: datetime, ident: str) -> str:
    raw = json.dumps([created_at.isoformat(), ident]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), str(ident)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise invalid("cursor", "not a cursor this API gave out; use the `next` link as it is") from None


def after(cursor: str | None) -> PageKey | None:
    """Where the page the cursor names starts."""
    if cursor is None:
        return None
    created, ident = decode_cursor(cursor)
    return PageKey(created, ident)


def cursor_of(key: PageKey | None) -> str | None:
    return encode_cursor(key.created_at, key.id) if key is not None else None


def next_link(request: Request, key: PageKey | None) -> str | None:
    cursor = cursor_of(key)
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    return f"{request.url.path}?{urlencode(params)}"
