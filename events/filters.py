"""Which events an operator wants to see: one filter for the dashboard's live tail and `gxwf events tail`.

Pure logic on decoded events, so the dashboard (on the server, before anything is sent) and the terminal
apply exactly the same rules; where to start reading (a stream sequence or a time) is parsed here too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

MAX_SUBJECTS = 8
MAX_VALUE_CHARS = 200
_RELATIVE = re.compile(r"^(\d{1,9})(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FilterError(ValueError):
    """A filter value that cannot be used; `field` names the parameter (or CLI option) at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_subject_pattern(pattern: str, field: str = "subject") -> str:
    """A NATS subject with wildcards: tokens split by '.', '*' a whole token, '>' only as the last one."""
    if not pattern or len(pattern) > MAX_VALUE_CHARS:
        raise FilterError(field, f"between 1 and {MAX_VALUE_CHARS} characters")
    tokens = pattern.split(".")
    for index, part in enumerate(tokens):
        if not part or any(ch.isspace() for ch in part):
            raise FilterError(field, f"{pattern!r} is not a NATS subject (empty token or whitespace)")
        if ">" in part and (part != ">" or index != len(tokens) - 1):
            raise FilterError(field, f"{pattern!r}: '>' may only be the whole last token")
        if "*" in part and part != "*":
            raise FilterError(field, f"{pattern!r}: '*' must be a whole token")
    return pattern


def subject_matches(pattern: str, subject: str) -> bool:
    wanted, actual = pattern.split("."), subject.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(actual) > index
        if index >= len(actual) or (part != "*" and part != actual[index]):
            return False
    return len(wanted) == len(actual)


def _value(field: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_VALUE_CHARS:
        raise FilterError(field, f"at most {MAX_VALUE_CHARS} characters")
    return value


class EventFacts(NamedTuple):
    """What the filters look at in an event, as plain strings: cheap to keep for many events (a tuple of
    strings is not tracked by the garbage collector, a decoded event is)."""

    consumers: tuple[str, ...]
    transfers: tuple[str, ...]
    runs: tuple[str, ...]


def _texts(*values: object) -> tuple[str, ...]:
    return tuple(v for v in values if isinstance(v, str) and v)


def facts_of(event: Mapping[str, Any] | None) -> EventFacts:
    event = event or {}
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    about = (event.get("correlationid"), event.get("subject"))
    return EventFacts(
        _texts(data.get("consumer_id"), data.get("consumerId")),
        _texts(*about, data.get("transfer_process_id")),
        _texts(*about, data.get("run_id")),
    )


@dataclass(frozen=True)
class EventFilter:
    """Every given criterion must hold; subjects match if any pattern does."""

    subjects: tuple[str, ...] = ()
    consumer: str | None = None
    transfer: str | None = None
    run: str | None = None
    text: str | None = None
    _text_lower: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_text_lower", self.text.lower() if self.text else None)

    @classmethod
    def build(
        cls,
        subjects: Iterable[str] = (),
        *,
        consumer: str | None = None,
        transfer: str | None = None,
        run: str | None = None,
        text: str | None = None,
    ) -> EventFilter:
        """Validated: raises FilterError naming the first bad value."""
        patterns = tuple(check_subject_pattern(p) for p in subjects if p != "")
        if len(patterns) > MAX_SUBJECTS:
            raise FilterError("subject", f"at most {MAX_SUBJECTS} subject patterns")
        return cls(
            patterns,
            _value("consumer", consumer),
            _value("transfer", transfer),
            _value("run", run),
            _value("text", text),
        )

    @property
    def needs_event(self) -> bool:
        """Whether the decoded event is needed (the subject alone decides otherwise)."""
        return any((self.consumer, self.transfer, self.run, self.text))

    def stream_subjects(self, stream_subjects: Iterable[str]) -> list[str]:
        """What to ask JetStream for, so the server already drops other subjects."""
        return list(self.subjects) if self.subjects else list(stream_subjects)

    def matches(self, subject: str, event: Mapping[str, Any] | None, text: str | None = None) -> bool:
        """`text`: what the free-text filter searches (the redacted JSON shown to people); default: the event."""
        if not self.needs_event:
            return self.matches_facts(subject, None, None)
        haystack = text if text is not None else json.dumps(event or {}, default=str)
        return self.matches_facts(subject, facts_of(event), haystack)

    def matches_facts(self, subject: str, facts: EventFacts | None, text: str | None) -> bool:
        if self.subjects and not any(subject_matches(p, subject) for p in self.subjects):
            return False
        if not self.needs_event:
            return True
        facts = facts or EventFacts((), (), ())
        if self.consumer and self.consumer not in facts.consumers:
            return False
        if self.transfer and self.transfer not in facts.transfers:
            return False
        if self.run and self.run not in facts.runs:
            return False
        return not (self._text_lower and self._text_lower not in (text or "").lower())

    def query(self) -> list[tuple[str, str]]:
        """The filter as URL query parameters (the dashboard's links and EventSource URL)."""
        pairs = [("subject", p) for p in self.subjects]
        for name in ("consumer", "transfer", "run", "text"):
            value = getattr(self, name)
            if value:
                pairs.append((name, value))
        return pairs


@dataclass(frozen=True)
class StartAt:
    """Where reading begins: after a stream sequence, at a time, or only new events (neither)."""

    sequence: int | None = None
    time: datetime | None = None

    @property
    def new_only(self) -> bool:
        return self.sequence is None and self.time is None


def parse_since(value: str | None, *, field: str = "since", now: datetime | None = None) -> StartAt:
    """A stream sequence (`1200`), an ISO 8601 time (`2026-12-01T10:00:00Z`, naive means UTC) or an age
    (`90s`, `15m`, `2h`, `1d`); empty: new events only."""
    if value is None or value.strip() == "":
        return StartAt()
    text = value.strip()
    if len(text) > 64:
        raise FilterError(field, "at most 64 characters")
    if text.isdigit():
        sequence = int(text)
        if sequence < 1 or sequence > 2**63 - 1:
            raise FilterError(field, "a stream sequence is a positive integer")
        return StartAt(sequence=sequence)
    relative = _RELATIVE.match(text)
    if relative:
        seconds = int(relative.group(1)) * _UNITS[relative.group(2)]
        return StartAt(time=(now or datetime.now(UTC)) - timedelta(seconds=seconds))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise FilterError(
            field, f"{text!r} is neither a stream sequence, an ISO 8601 time nor an age like 15m"
        ) from None
    return StartAt(time=moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def parse_last_event_id(value: str | None, *, field: str = "Last-Event-ID") -> int | None:
    """The SSE event id is the stream sequence of the last event the client has."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isdigit() or len(text) > 19 or int(text) < 1:
        raise FilterError(field, "the id of an event sent by this tail (a positive stream sequence)")
    return int(text)
