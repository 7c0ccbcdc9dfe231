"""The NATS URL of every setting and file may list the servers of a cluster, comma-separated (as the nats CLI's
--server takes them), each with its own `user:password@`: clients connect to one and fail over to the others."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit


def nats_servers(url: str) -> list[str]:
    """Each server URL of `url`, credentials included, in the given order."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("no NATS server URL given")
    return servers


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def credentials(url: str) -> tuple[str, str | None] | None:
    """The (user, password) of the first server of `url` that names a user; a user without password is a token."""
    for server in nats_servers(url):
        parts = urlsplit(server)
        if parts.username:
            return unquote(parts.username), None if parts.password is None else unquote(parts.password)
    return None
