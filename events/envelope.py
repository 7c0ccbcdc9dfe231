"""The CloudEvents 1.0 envelope every message on the bus travels in (structured JSON mode)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

P = TypeVar("P", bound=BaseModel)
# Covariant, so a helper that reads any run fact takes Envelope[RunFact] and a handler of Envelope[RunFailed]
# may pass its event on; envelopes are only read once built.
P_co = TypeVar("P_co", bound=BaseModel, covariant=True)

# uuid5 namespace for ids derived from what caused an event: a retried handler derives the same id,
# and JetStream drops the second publish inside its duplicate window (Nats-Msg-Id).
EVENT_ID_NAMESPACE = uuid.UUID("6f1d3c52-2b1e-4d7a-9a57-4c9f0b1e8a21")
SOURCE = "urn:gaiax-workflows"


def derived_id(*parts: str) -> str:
    """A deterministic event id from the facts that make an event unique."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, "\x1f".join(parts)))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(BaseModel, Generic[P_co]):
    """CloudEvents attributes, our two extensions, and the typed payload in `data`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, max_length=200, description="Unique per event; used as Nats-Msg-Id")
    source: str = Field(default=SOURCE, min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200, description="The subject the event is published on")
    subject: str | None = Field(default=None, max_length=500, description="The document the event is about")
    time: datetime = Field(default_factory=utcnow)
    datacontenttype: Literal["application/json"] = "application/json"
    correlationid: str | None = Field(
        default=None, max_length=200, description="Transfer process id or run id tying a flow together"
    )
    causationid: str | None = Field(default=None, max_length=200, description="Id of the event that caused it")
    data: P_co


class RawEnvelope(Envelope[Any]):
    """An envelope whose payload is not interpreted (tail, dead letters, replay)."""

    data: Any = None


def new_event(
    type_: str,
    data: P,
    *,
    id_: str | None = None,
    subject: str | None = None,
    correlationid: str | None = None,
    causationid: str | None = None,
    source: str = SOURCE,
) -> Envelope[P]:
    model = cast("type[Envelope[P]]", Envelope.__class_getitem__(type(data)))
    return model(
        id=id_ or str(uuid.uuid4()),
        type=type_,
        subject=subject,
        correlationid=correlationid,
        causationid=causationid,
        source=source,
        data=data,
    )
