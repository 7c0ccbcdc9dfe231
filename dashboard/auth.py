"""Who may look (operator token) and who may act (admin token): bearer header, session cookie, or ?token= once.

Tokens are compared as sha256 digests with hmac.compare_digest against both roles, so neither a token's length
nor which role matched shows in the time an answer takes. The cookie holds an HMAC of the token, not the token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

COOKIE = "gxwf_dashboard"
# Sent by the dashboard's own script with every state-changing request: a cross-site form cannot add a header,
# so a cookie alone never re-publishes anything (CSRF).
ACTION_HEADER = "x-gxwf-action"
_NOTHING = hashlib.sha256(b"\x00no token presented\x00").digest()
_SESSION = b"gxwf-dashboard-session-v1"


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

    def session(self, role: Role) -> str:
        token = self.admin if role is Role.ADMIN else self.operator
        return f"{role.name.lower()}.{hmac.new(token.encode(), _SESSION, hashlib.sha256).hexdigest()}"

    def role_of_session(self, cookie: str | None) -> Role | None:
        found: Role | None = None
        for role in (Role.ADMIN, Role.OPERATOR):
            if hmac.compare_digest((cookie or "").encode(), self.session(role).encode()) and found is None:
                found = role
        return found


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
