from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, StringConstraints

# EDC ids are UUIDs, URNs or base64 agreement ids; consumer ids are DIDs or BPNs. Bounded so that a hostile
# producer cannot push megabyte keys into the store.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s\x00]+$")]
Reason = Annotated[str, StringConstraints(max_length=4000)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://\S+$")]

_BY_SUBJECT: dict[str, type[Payload]] = {}


class Payload(BaseModel):
    """Base of every payload: unknown fields are kept, so newer producers do not break older handlers.

    An event's payload class names the subject it travels on (its CloudEvents `type` too): that class
    attribute is the only place a subject is spelled. Parts of payloads and shared bases name none."""

    model_config = ConfigDict(extra="allow", frozen=True)

    subject: ClassVar[str] = ""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        subject = cls.__dict__.get("subject")
        if not subject:
            return
        # Two payloads on one subject would make a subscriber's validation depend on import order.
        taken = _BY_SUBJECT.setdefault(subject, cls)
        if _name(taken) != _name(cls):
            raise TypeError(f"subject {subject!r} belongs to {_name(taken)} already, not {_name(cls)}")
        _BY_SUBJECT[subject] = cls  # the same class imported again (a reload) replaces itself


def event_payloads() -> tuple[type[Payload], ...]:
    """Every payload class imported so far that names a subject, in the order they were declared."""
    return tuple(_BY_SUBJECT.values())


def payload_for(subject: str) -> type[Payload]:
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        raise KeyError(f"no payload class names subject {subject!r}") from None


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
