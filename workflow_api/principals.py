"""Who a request is: the consumer a bearer token's grant names, and a short-lived cache of that answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from workflow_api.problems import Problem


@dataclass(frozen=True)
class Principal:
    consumer_id: str
    grant_id: str
    # None while the grant is active; else why the consumer is deprovisioned.
    deprovisioned: str | None = None
    # Deprovisioned: until when its token may still read (the revocation plus the operator's grace period).
    readable_until: datetime | None = None

    def require_active(self, action: str) -> None:
        if self.deprovisioned is not None:
            raise Problem(
                403,
                "deprovisioned",
                f"cannot {action}: this access was deprovisioned ({self.deprovisioned}); "
                "runs, logs and results stay readable for the grace period the operator set",
                title="Deprovisioned",
                errors=[{"field": "Authorization", "message": f"deprovisioned: {self.deprovisioned}"}],
            )


class PrincipalCache:
    """Principals by token hash for a second or so: a status poll then costs no grant lookup. Bounded."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self.seconds = seconds
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, digest: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        if len(self._entries) >= self.size:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.size:
                self._entries.clear()
        self._entries[digest] = (time.monotonic() + self.seconds, principal)
