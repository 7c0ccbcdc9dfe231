"""Which URLs a connector may be called back at: only below a callback base configured for it.

A provision request's `callbackAddress` comes from whoever holds a connector's key, and the callback carries
the management key (control-plane generation) and the consumer's access token (provisioned callbacks): followed
blindly it would hand both to any address a request names. URLs are compared as httpx parses them (the same
parser that sends the request), part by part, never as string prefixes.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

import httpx

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters a callback address from a request may not hold: each changes what a server reads as the path
# (query, fragment, percent-encoded dots or slashes, backslashes some servers take for slashes).
_FORBIDDEN = frozenset("?#%\\")


class CallbackRefused(ValueError):
    """The URL is not below any callback base of the connector; the message says why."""


def origin(url: str) -> str:
    """scheme://host[:port] of a URL: the default callback base of a connector with a management URL."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{parsed.scheme}://{host}{port}"


def check_callback_address(address: str) -> None:
    """The part of a callback URL a request supplied: plain enough that no parser reads it two ways."""
    if any(ch in _FORBIDDEN for ch in address) or any(ord(ch) < 0x21 or ord(ch) > 0x7E for ch in address):
        raise CallbackRefused(f"callback address {_shown(address)}: holds ?, #, %, \\ or non-ASCII characters")


def check_callback(url: str, bases: Iterable[str]) -> None:
    """CallbackRefused unless `url` is one of `bases` or below one of them."""
    bases = tuple(bases)
    if not bases:
        raise CallbackRefused("no callback base is configured for this connector: nobody is called back")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise CallbackRefused(f"callback URL {_shown(url)} cannot be parsed") from None
    if parsed.userinfo or "@" in url.split("//", 1)[-1].split("/", 1)[0]:
        raise CallbackRefused(f"callback URL {_shown(url)} carries user info")
    if parsed.query or parsed.fragment or "#" in url or "?" in url:
        raise CallbackRefused(f"callback URL {_shown(url)} carries a query or fragment")
    path = url.split("//", 1)[-1].partition("/")[2]
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        raise CallbackRefused(f"callback URL {_shown(url)} has . or .. path segments")
    for base in bases:
        try:
            if _under(parsed, httpx.URL(base)):
                return
        except (httpx.InvalidURL, ValueError):
            continue  # a base that does not parse allows nothing
    raise CallbackRefused(
        f"callback URL {_shown(url)} is not under the connector's callback base(s) {', '.join(bases)}"
    )


def _under(url: httpx.URL, base: httpx.URL) -> bool:
    if url.scheme != base.scheme or url.scheme not in _DEFAULT_PORTS or url.host != base.host or not url.host:
        return False
    if (url.port or _DEFAULT_PORTS[url.scheme]) != (base.port or _DEFAULT_PORTS[base.scheme]):
        return False
    prefix = base.raw_path.split(b"?", 1)[0].rstrip(b"/")
    path = url.raw_path
    return path == prefix or path.startswith(prefix + b"/") or (not prefix and path == b"/")


def _shown(url: str) -> str:
    """For logs and the call record: without user info (it may hold a credential), bounded."""
    scheme, sep, rest = url.partition("//")
    netloc, slash, tail = rest.partition("/")
    netloc = netloc.rpartition("@")[2]
    return repr(f"{scheme}{sep}{netloc}{slash}{tail}"[:200])
