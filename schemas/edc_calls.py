"""One attempt of a call to an EDC connector and how it ended: the audit trail of what we told connectors."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.documents import utcnow

CallOutcome = Literal["ok", "client_error", "server_error", "network_error", "not_configured", "refused"]


class EdcCall(BaseModel):
    """Never holds request bodies or headers: they carry the consumer's token and our API keys."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    collection: ClassVar[str] = "edc_calls"

    id: str = Field(alias="_id")
    connector: str
    operation: str = Field(description="transfer_process, contract_agreement, provisioned, deprovisioned")
    method: str
    url: str = Field(description="Without its query string")
    transfer_process_id: str | None = None
    attempt: int = Field(ge=1)
    # True on the attempt after which the client stopped: success, a 4xx, or the last retry.
    final: bool
    # refused: the URL was not under the connector's callback bases, so nothing was sent.
    outcome: CallOutcome
    status: int | None = None
    error: str | None = None
    duration_ms: float
    at: datetime = Field(default_factory=utcnow)
