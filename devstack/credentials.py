"""The stack's secrets: generated on its first start, kept in STATE_DIR/credentials.json (mode 0600) and reused
on every later start, so URLs written into other files stay valid across restarts."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

from devstack.errors import StackError

CREDENTIALS_FILE = "credentials.json"
# Owner read/write only: the file holds every server's administrator secret.
PRIVATE_MODE = 0o600


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the first byte on, replacing the file atomically."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    partial.replace(path)


@dataclass
class StackCredentials:
    """Named secrets, each generated the first time it is asked for. Names are `<server>:<purpose>`, e.g.
    `nats:handlers` (that NATS user's password) or `s3:secret_key`."""

    path: Path
    values: dict[str, str] = field(default_factory=dict)
    _changed: bool = False

    @classmethod
    def load(cls, state_dir: Path) -> StackCredentials:
        path = state_dir / CREDENTIALS_FILE
        if not path.exists():
            return cls(path)
        try:
            # Tightened rather than refused: a copy of the state directory may have lost the mode.
            if stat.S_IMODE(path.stat().st_mode) != PRIVATE_MODE:
                path.chmod(PRIVATE_MODE)
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise StackError(f"cannot read {path}: {error}; remove it to generate new credentials") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise StackError(f"{path} is not a credentials file; remove it to generate new credentials")
        return cls(path, dict(data))

    def secret(self, name: str) -> str:
        """URL-safe without quoting (letters, digits, - and _), 192 bits."""
        if name not in self.values:
            self.values[name] = secrets.token_urlsafe(24)
            self._changed = True
        return self.values[name]

    def access_key(self, name: str) -> str:
        """An S3 access key id: upper-case letters and digits, like AWS's."""
        if name not in self.values:
            self.values[name] = "GXWF" + secrets.token_hex(8).upper()
            self._changed = True
        return self.values[name]

    def save(self) -> None:
        if self._changed or not self.path.exists():
            write_private(self.path, json.dumps(self.values, indent=2, sort_keys=True) + "\n")
            self._changed = False
