"""Where the servers of a running stack answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from devstack.access import S3Keys


@dataclass(frozen=True)
class StackEndpoints:
    nats: str
    nats_monitor: str | None
    mongo: str
    s3: str
    s3_bucket: str
    # Keyed by role ("nats", "mongo", "s3"), like the URLs above; a server used from outside has none.
    pids: dict[str, int] = field(default_factory=dict)
    # The URL of each NATS user the stack was given (`nats` is the unrestricted admin's); none for an outside server.
    nats_users: dict[str, str] = field(default_factory=dict)
    # The embedded S3's keys; None for an outside server.
    s3_credentials: S3Keys | None = None
    # Each embedded NATS node's monitoring URL (`nats_monitor` is the first's); `nats` lists their client URLs.
    nats_monitors: list[str] = field(default_factory=list)

    @property
    def s3_access_key(self) -> str | None:
        return self.s3_credentials.access_key if self.s3_credentials else None

    @property
    def s3_secret_key(self) -> str | None:
        return self.s3_credentials.secret_key if self.s3_credentials else None

    def nats_for(self, user: str) -> str:
        """The URL of NATS user `user`, or the one NATS URL when the stack made no such user."""
        return self.nats_users.get(user, self.nats)

    def to_json(self) -> dict[str, object]:
        keys = self.s3_credentials
        return {
            "nats": self.nats,
            "nats_monitor": self.nats_monitor,
            "nats_monitors": list(self.nats_monitors),
            "nats_users": dict(self.nats_users),
            "mongo": self.mongo,
            "s3": self.s3,
            "s3_bucket": self.s3_bucket,
            "s3_credentials": {"access_key": keys.access_key, "secret_key": keys.secret_key} if keys else None,
            "pids": dict(self.pids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> StackEndpoints:
        """The inverse of `to_json`, for readers of STATE_DIR/stack.json; rejects a malformed file."""
        try:
            monitor = data["nats_monitor"]
            pids = data["pids"]
            if monitor is not None and not isinstance(monitor, str):
                raise TypeError("nats_monitor")
            if not isinstance(pids, Mapping):
                raise TypeError("pids")
            users = data.get("nats_users") or {}
            if not isinstance(users, Mapping):
                raise TypeError("nats_users")
            monitors = data.get("nats_monitors") or []
            if not isinstance(monitors, list):
                raise TypeError("nats_monitors")
            keys = data.get("s3_credentials")
            if keys is not None and not isinstance(keys, Mapping):
                raise TypeError("s3_credentials")
            return cls(
                nats=_text(data, "nats"),
                nats_monitor=monitor,
                mongo=_text(data, "mongo"),
                s3=_text(data, "s3"),
                s3_bucket=_text(data, "s3_bucket"),
                pids={str(role): int(pid) for role, pid in pids.items()},
                nats_users={str(user): str(url) for user, url in users.items()},
                s3_credentials=S3Keys(_text(keys, "access_key"), _text(keys, "secret_key")) if keys else None,
                nats_monitors=[str(monitor) for monitor in monitors],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a stack endpoints document: bad or missing {error}") from None


def _text(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value
