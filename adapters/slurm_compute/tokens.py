"""The JWT slurmrestd wants (X-SLURM-USER-TOKEN), from one of three sources, always fresh.

- Slurm's HS256 key (`jwt_key_file`, the file of AuthAltParameters=jwt_key=...): tokens are minted here with the
  claims Slurm's auth/jwt checks (`sun` the user, `iat`, `exp`), short-lived, and minted again once less than a
  third of their life is left.
- A file or an environment variable another process keeps current (`scontrol token` in a cron job, a secret
  mount): read again before the token's `exp` and whenever slurmrestd turns the token down.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Protocol

import jwt

# A token this close to its exp counts as expired: slurmrestd and this machine's clocks need not agree.
_EXPIRY_MARGIN_SECONDS = 30.0


class TokenUnavailable(Exception):
    """The configured source holds no usable token (file missing or empty, variable unset)."""


class TokenSource(Protocol):
    async def token(self) -> str:
        """A token that is not about to expire."""
        ...

    def rejected(self, token: str) -> None:
        """slurmrestd refused this token: the next `token()` must not return it again unread."""
        ...


def expiry(token: str) -> float | None:
    """The token's exp claim (not verified: only slurmctld holds the key), or None if it has none."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _bare(text: str) -> str:
    # `scontrol token` prints SLURM_JWT=<token>.
    text = text.strip()
    return text.split("=", 1)[1].strip() if text.startswith("SLURM_JWT=") else text


class MintedTokens:
    """Short-lived tokens minted with Slurm's own key."""

    def __init__(self, key_file: Path, user: str, *, lifespan_seconds: int = 1800) -> None:
        self.key_file = key_file
        self.user = user
        self.lifespan_seconds = lifespan_seconds
        self._token: str | None = None
        self._renew_at = 0.0

    async def token(self) -> str:
        now = time.time()
        if self._token is None or now >= self._renew_at:
            try:
                key = await asyncio.to_thread(self.key_file.read_bytes)
            except OSError as error:
                raise TokenUnavailable(f"Slurm's JWT key {self.key_file}: {error.strerror or error}") from None
            issued = int(now)
            self._token = jwt.encode(
                {"sun": self.user, "iat": issued, "exp": issued + self.lifespan_seconds}, key, algorithm="HS256"
            )
            self._renew_at = now + self.lifespan_seconds * 2 / 3
        return self._token

    def rejected(self, token: str) -> None:
        # The key may have been rotated: read it again.
        if token == self._token:
            self._token = None


class _ReadTokens:
    """A token kept current by someone else: cached until shortly before its exp, or until rejected."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._expires: float | None = None

    async def _read(self) -> str:
        raise NotImplementedError

    async def token(self) -> str:
        if self._token is None or (self._expires is not None and time.time() >= self._expires - _EXPIRY_MARGIN_SECONDS):
            token = _bare(await self._read())
            if not token:
                raise TokenUnavailable(f"{self.describe()} holds no token")
            self._token, self._expires = token, expiry(token)
        return self._token

    def rejected(self, token: str) -> None:
        if token == self._token:
            self._token = None

    def describe(self) -> str:
        raise NotImplementedError


class FileTokens(_ReadTokens):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    async def _read(self) -> str:
        try:
            return await asyncio.to_thread(self.path.read_text)
        except OSError as error:
            raise TokenUnavailable(f"token file {self.path}: {error.strerror or error}") from None

    def describe(self) -> str:
        return f"token file {self.path}"


class EnvTokens(_ReadTokens):
    def __init__(self, variable: str) -> None:
        super().__init__()
        self.variable = variable

    async def _read(self) -> str:
        return os.environ.get(self.variable, "")

    def describe(self) -> str:
        return f"environment variable {self.variable}"
