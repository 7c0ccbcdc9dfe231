"""Where the servers of a running stack answer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StackEndpoints:
    nats: str
    nats_monitor: str | None
    mongo: str
    s3: str
    s3_bucket: str
    # Keyed by role ("nats", "mongo", "s3"), like the URLs above; a server used from outside has none.
    pids: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "nats": self.nats,
            "nats_monitor": self.nats_monitor,
            "mongo": self.mongo,
            "s3": self.s3,
            "s3_bucket": self.s3_bucket,
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
            return cls(
                nats=_text(data, "nats"),
                nats_monitor=monitor,
                mongo=_text(data, "mongo"),
                s3=_text(data, "s3"),
                s3_bucket=_text(data, "s3_bucket"),
                pids={str(role): int(pid) for role, pid in pids.items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a stack endpoints document: bad or missing {error}") from None


def _text(data: Mapping[str, object], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(key)
    return value
