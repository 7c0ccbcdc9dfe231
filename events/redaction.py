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
# Secrets inside a longer text (an error message quoting the input, a log line): the credential after
# "Bearer", and the value after a secret-looking key, quoted or not.
_INLINE_CREDENTIAL = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
_INLINE_KEY_VALUE = re.compile(
    r"""(["']?[A-Za-z_-]*(?:auth_?code|authorization|token|api_?key|password|passwd|secret|private_?key|"""
    r"""credential|cookie)[A-Za-z_-]*["']?\s*[:=]\s*)(["']?)([^"'\s,;}\]]+)""",
    re.IGNORECASE,
)
_TEXT_MARKERS = ("auth", "token", "key", "passw", "secret", "bearer", "basic", "credential", "cookie")
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
    if isinstance(value, str):
        return REDACTED if _SECRET_VALUE.search(value) else redact_text(value)
    return value


def redact_text(text: str) -> str:
    """`text` with credentials inside it replaced: `Bearer [redacted]`, `authCode: '[redacted]'`."""
    lowered = text.lower()
    if not any(marker in lowered for marker in _TEXT_MARKERS):
        return text
    text = _INLINE_CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _INLINE_KEY_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def may_hold_secret(raw: bytes) -> bool:
    """False only when `raw` certainly holds nothing `redact` would change (so it can be shown as it is)."""
    lowered = raw.lower()
    return any(marker in lowered for marker in _MARKERS)
