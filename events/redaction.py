"""Secrets out of whatever an operator sees: payloads in the dashboard and the terminal tail.

Tokens are stored hashed and never travel in events on purpose, but a connector's raw callback, a dead
letter's original body or a future payload may still carry one; what is shown is redacted by key and by shape.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

# Compared against the key lowercased with everything but letters and digits removed (authCode, auth_code).
_SECRET_KEY_PARTS = (
    "authcode",
    "authorization",
    "token",
    "apikey",
    "password",
    "passwd",
    "secret",
    "privatekey",
    "credential",
    "cookie",
)
# Values that are secrets whatever their key: bearer credentials and JSON web tokens.
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S+|^eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.", re.IGNORECASE)
# Cheap test on the raw bytes: a body with none of these needs no parsing for redaction.
_MARKERS = (b"auth", b"token", b"key", b"passw", b"secret", b"bearer", b"basic", b"eyj", b"credential", b"cookie")


def secret_key(key: str) -> bool:
    squashed = "".join(ch for ch in key.lower() if ch.isalnum())
    if squashed.endswith("header"):  # the name of the header a key travels in, not the key
        return False
    return any(part in squashed for part in _SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking entry replaced by "[redacted]"."""
    if isinstance(value, dict):
        return {k: (REDACTED if secret_key(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, str) and _SECRET_VALUE.search(value):
        return REDACTED
    return value


def may_hold_secret(raw: bytes) -> bool:
    """False only when `raw` certainly holds nothing `redact` would change (so it can be shown as it is)."""
    lowered = raw.lower()
    return any(marker in lowered for marker in _MARKERS)
