"""Who may use the stack's servers: NATS users with their permissions, the MongoDB-wire users, the S3 identity.

The stack knows nothing of what its callers publish: they hand it their NATS users (`NatsUser`), and it always
adds one unrestricted user, `admin`, for tools and tests. Every password comes from StackCredentials.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from devstack.credentials import StackCredentials

ADMIN = "admin"
_USER_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class NatsUser:
    """A NATS user. `publish`/`subscribe`: the subjects it may use (NATS wildcards); None means all.

    Its replies come to `_INBOX.<name>.>` (the client must connect with that inbox prefix, see `inbox_prefix`),
    so it may read replies meant for it but not those of another user.
    """

    name: str
    publish: tuple[str, ...] | None = None
    subscribe: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not _USER_NAME.fullmatch(self.name):
            raise ValueError(f"NATS user name {self.name!r}: lower-case letters, digits, - and _")

    def authorization(self, password: str) -> dict[str, object]:
        """This user's entry in the `authorization.users` list of a nats-server configuration."""
        entry: dict[str, object] = {"user": self.name, "password": password}
        permissions: dict[str, object] = {}
        if self.publish is not None:
            permissions["publish"] = {"allow": list(self.publish)}
        if self.subscribe is not None:
            permissions["subscribe"] = {"allow": [*self.subscribe, f"{inbox_prefix(self.name)}.>"]}
        if permissions:
            entry["permissions"] = permissions
        return entry


def inbox_prefix(user: str) -> str:
    return f"_INBOX.{user}"


def nats_password(credentials: StackCredentials, user: str) -> str:
    return credentials.secret(f"nats:{user}")


# The MongoDB-wire users: `admin` may do anything (user administration included); `gxwf`, what every service
# uses, reads, writes and manages collections and indexes in any database, but administers no users or server.
MONGO_ADMIN = "admin"
MONGO_APP = "gxwf"
MONGO_ROLES: dict[str, list[dict[str, str]]] = {
    MONGO_ADMIN: [{"role": "root", "db": "admin"}],
    MONGO_APP: [{"role": "readWriteAnyDatabase", "db": "admin"}, {"role": "dbAdminAnyDatabase", "db": "admin"}],
}


def mongo_password(credentials: StackCredentials, user: str) -> str:
    return credentials.secret(f"mongo:{user}")


@dataclass(frozen=True)
class S3Keys:
    access_key: str
    secret_key: str

    @classmethod
    def of(cls, credentials: StackCredentials) -> S3Keys:
        return cls(credentials.access_key("s3:access_key"), credentials.secret("s3:secret_key"))


def with_user(url: str, user: str, password: str) -> str:
    """`url` with `user:password@` in its authority (replacing any there)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"))


def without_user(url: str) -> str:
    """`url` without the `user:password@` of its authority, for messages."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
