"""Keyset pagination, newest first: the cursor is the last item's (created_at, id), opaque to the client."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Query, Request

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


def after(cursor: str | None) -> dict[str, Any]:
    """The query part that starts after the cursor (sort: created_at descending, _id descending)."""
    if cursor is None:
        return {}
    created, ident = decode_cursor(cursor)
    return {"$or": [{"created_at": {"$lt": created}}, {"created_at": created, "_id": {"$lt": ident}}]}


def next_link(request: Request, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    return f"{request.url.path}?{urlencode(params)}"


async def page(
    collection: Any, query: dict[str, Any], cursor: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to `limit` documents after the cursor, and the cursor of the next page (None on the last)."""
    full = {"$and": [query, after(cursor)]} if cursor else query
    found = [doc async for doc in collection.find(full).sort([("created_at", -1), ("_id", -1)]).limit(limit + 1)]
    more = len(found) > limit
    found = found[:limit]
    last = found[-1] if more and found else None
    return found, encode_cursor(last["created_at"], str(last["_id"])) if last is not None else None
