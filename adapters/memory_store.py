"""The state store in process memory: a test double that keeps the MongoDB store's contract to the letter.

The fast test tier runs every handler against it, so anything it allowed that MongoDB refuses (or the other way
round) would make those tests lie; the store contract tests run against both to keep them equal. Documents go
through BSON on the way in and out, as with a server: datetimes come back at millisecond precision in UTC,
tuples as lists, and a caller keeps no reference into what is stored.

Never wired by the composition root (an import-linter contract keeps production packages away from it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import bson
import structlog
from bson.codec_options import CodecOptions

from ports.store import Outcome, TransitionResult
from schemas.documents import HistoryEntry, StatefulDocument, utcnow

D = TypeVar("D", bound=StatefulDocument)
log = structlog.get_logger("gxwf.store")

# What the MongoDB store's client is configured with (tz_aware=True): aware UTC datetimes back.
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)
_MISSING = object()


def _through_bson(value: Mapping[str, Any]) -> dict[str, Any]:
    return bson.decode(bson.encode(value), codec_options=_CODEC)


class MemoryStateStore:
    def __init__(self) -> None:
        # Per collection, documents by id in insertion order: MongoDB's natural order on a fresh collection.
        self.collections: dict[str, dict[str, dict[str, Any]]] = {}

    def _coll(self, kind: type[StatefulDocument]) -> dict[str, dict[str, Any]]:
        return self.collections.setdefault(kind.collection, {})

    async def create(self, doc: StatefulDocument, *, event_id: str) -> bool:
        type(doc).machine.check(None, doc.state)
        await _yield()
        now = utcnow()
        entry = HistoryEntry(from_=None, to=doc.state, at=now, event_id=event_id)
        stored = _through_bson(
            doc.model_copy(update={"history": [entry], "created_at": now, "updated_at": now}).to_store()
        )
        coll = self._coll(type(doc))
        if stored["_id"] in coll:
            return False
        coll[stored["_id"]] = stored
        return True

    async def get(self, kind: type[D], doc_id: str) -> D | None:
        await _yield()
        raw = self._coll(kind).get(doc_id)
        return kind.from_store(_through_bson(raw)) if raw is not None else None

    async def set_fields(self, kind: type[StatefulDocument], doc_id: str, fields: Mapping[str, Any]) -> bool:
        if "state" in fields or "history" in fields:
            raise ValueError("state and history change only through transition()")
        kind.check_fields(fields)
        await _yield()
        raw = self._coll(kind).get(doc_id)
        if raw is None:
            return False
        if any("." in key or key.startswith("$") for key in fields):
            raise NotImplementedError(f"only top-level fields are supported here: {sorted(fields)}")
        raw.update(_through_bson({**fields, "updated_at": utcnow()}))
        return True

    async def find(
        self,
        kind: type[D],
        *,
        states: list[str] | None = None,
        limit: int = 1000,
        oldest_first: bool = False,
        **equals: Any,
    ) -> list[D]:
        await _yield()
        found = list(_matching(self._coll(kind).values(), states, equals))
        if oldest_first:
            found.sort(key=lambda raw: (raw["created_at"], raw["_id"]))
        # MongoDB reads a limit of 0 as none, and a negative one as its absolute value.
        if limit:
            found = found[: abs(limit)]
        return [kind.from_store(_through_bson(raw)) for raw in found]

    async def count(self, kind: type[StatefulDocument], *, states: list[str] | None = None, **equals: Any) -> int:
        await _yield()
        return sum(1 for _ in _matching(self._coll(kind).values(), states, equals))

    async def transition(
        self,
        kind: type[StatefulDocument],
        doc_id: str,
        to: str,
        *,
        event_id: str,
        reason: str | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> TransitionResult:
        kind.check_fields(fields or {})
        await _yield()
        # Nothing below awaits: the compare and the set are one step, as MongoDB's conditional update_one is.
        raw = self._coll(kind).get(doc_id)
        if raw is None:
            return TransitionResult(Outcome.MISSING, None)
        state = str(raw["state"])
        history: list[dict[str, Any]] = raw.get("history", [])
        if any(h.get("event_id") == event_id and h.get("to") == to for h in history):
            return TransitionResult(Outcome.ALREADY_APPLIED, state)
        if state not in kind.machine.sources(to):
            log.warning("transition rejected", kind=kind.collection, id=doc_id, state=state, to=to, event_id=event_id)
            return TransitionResult(Outcome.REJECTED, state)
        now = utcnow()
        entry = {"from": state, "to": to, "at": now, "event_id": event_id, "reason": reason}
        # As in the MongoDB pipeline update: the given fields first, then state, history and updated_at win.
        update = {**(fields or {}), "history": [*history, entry], "state": to, "updated_at": now}
        raw.update(_through_bson(update))
        return TransitionResult(Outcome.APPLIED, to)

    def backdate(self, kind: type[StatefulDocument], doc_id: str, seconds: float) -> None:
        """Test hook, not part of the port: the document was created and moved that much earlier, so time
        limits can be reached without waiting for them."""
        raw = self._coll(kind)[doc_id]
        shift = timedelta(seconds=seconds)
        for key in ("created_at", "updated_at"):
            raw[key] = raw[key] - shift
        for entry in raw.get("history", []):
            entry["at"] = entry["at"] - shift


async def _yield() -> None:
    # A server round trip lets other tasks run; so does every call here, so racing writers really interleave.
    await asyncio.sleep(0)


def _matching(
    docs: Iterable[dict[str, Any]], states: list[str] | None, equals: Mapping[str, Any]
) -> Iterable[dict[str, Any]]:
    wanted = _through_bson(dict(equals))
    for path, value in wanted.items():
        if isinstance(value, Mapping) and any(str(key).startswith("$") for key in value):
            raise NotImplementedError(f"query operators are not supported here: {path}={value!r}")
    for raw in docs:
        if states is not None and raw.get("state") not in states:
            continue
        if all(_equal_match(raw, path, value) for path, value in wanted.items()):
            yield raw


def _equal_match(doc: Mapping[str, Any], path: str, value: Any) -> bool:
    """MongoDB's `{path: value}`: a dotted path reaches into sub-documents and arrays, an array matches when
    it holds the value, and None matches a missing field too."""
    candidates = _resolve(doc, path.split("."))
    if value is None and (not candidates or _MISSING in candidates):
        return True
    return any(_same(candidate, value) for candidate in candidates if candidate is not _MISSING)


def _resolve(value: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping):
        return _resolve(value[head], rest) if head in value else [_MISSING]
    if isinstance(value, list):
        if head.isdigit() and int(head) < len(value):
            return _resolve(value[int(head)], rest)
        return [found for item in value if isinstance(item, Mapping) for found in _resolve(item, parts)]
    return [_MISSING]


def _same(candidate: Any, value: Any) -> bool:
    if _equal(candidate, value):
        return True
    return isinstance(candidate, list) and not isinstance(value, list) and any(_equal(c, value) for c in candidate)


def _equal(a: Any, b: Any) -> bool:
    # BSON tells booleans from numbers (true is not 1); Python does not.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        # Embedded documents compare field by field in order.
        return list(a.keys()) == list(b.keys()) and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
