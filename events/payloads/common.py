from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

# EDC ids are UUIDs, URNs or base64 agreement ids; consumer ids are DIDs or BPNs. Bounded so that a hostile
# producer cannot push megabyte keys into the store.
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s\x00]+$")]
Reason = Annotated[str, StringConstraints(max_length=4000)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^https?://\S+$")]


class Payload(BaseModel):
    """Base of every payload: unknown fields are kept, so newer producers do not break older handlers."""

    model_config = ConfigDict(extra="allow", frozen=True)
