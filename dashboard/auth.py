"""Who may look (operator token) and who may act (admin token): bearer header, session cookie, or ?token= once.

Tokens are compared as sha256 digests with hmac.compare_digest against both roles, so neither a token's length
nor which role matched shows in the time an answer takes. The cookie holds a random session id that this process
maps to a role until the session expires or logout ends it: a copied cookie is worth nothing after either.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

COOKIE = "gxwf_dashboard"
# Sent by the dashboard's own script with every state-changing request: a cross-site form cannot add a header,
# so a cookie alone never re-publishes anything (CSRF).
ACTION_HEADER = "x-gxwf-action"
_NOTHING = hashlib.sha256(b"\x00no token presented\x00").digest()


class Role(IntEnum):
    OPERATOR = 1
    ADMIN = 2


@dataclass(frozen=True)
class Tokens:
    operator: str
    admin: str

    def __post_init__(self) -> None:
        if len(self.operator) < 16 or len(self.admin) < 16:
            raise ValueError("dashboard tokens need at least 16 characters")
        if self.operator == self.admin:
            raise ValueError("the operator and the admin token must differ")

    def role_of(self, presented: str | None) -> Role | None:
        digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest() if presented else _NOTHING
        admin = hmac.compare_digest(digest, hashlib.sha256(self.admin.encode()).digest())
        operator = hmac.compare_digest(digest, hashlib.sha256(self.operator.encode()).digest())
        return Role.ADMIN if admin else Role.OPERATOR if operator else None


class Sessions:
    """Server-side sessions: a random id (the cookie) -> role and expiry, in this process's memory. Replicas do
    not share them, so a replicated dashboard needs session affinity (its Service has ClientIP affinity)."""

    def __init__(
        self,
        lifetime_seconds: float = 12 * 3600,
        *,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime_seconds = lifetime_seconds
        self.max_sessions = max_sessions
        self.clock = clock
        # Keyed by the id's sha256: the ids themselves are never kept; oldest first.
        self._sessions: OrderedDict[bytes, tuple[Role, float]] = OrderedDict()

    def start(self, role: Role) -> str:
        session_id = secrets.token_urlsafe(32)
        self._sessions[self._key(session_id)] = (role, self.clock() + self.lifetime_seconds)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return session_id

    def role_of(self, session_id: str | None) -> Role | None:
        if not session_id:
            return None
        key = self._key(session_id)
        found = self._sessions.get(key)
        if found is None:
            return None
        role, expires = found
        if self.clock() >= expires:
            del self._sessions[key]
            return None
        return role

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(self._key(session_id), None)

    @staticmethod
    def _key(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


def stored_or_new(state_dir: Path, name: str) -> tuple[str, bool]:
    """A token kept in the state directory (mode 0600), made on first use; True when made now."""
    path = state_dir / name
    if path.exists():
        existing = path.read_text().strip()
        if existing:
            return existing, False
    state_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, True
