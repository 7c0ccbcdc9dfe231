"""Free TCP ports on the loopback interface, for servers that must be told their port up front."""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Collection

LOOPBACK = "127.0.0.1"

# The kernel may hand a port that was just released straight back to the next bind(0). Three servers
# reserve ports at the same moment, so remember what this process handed out and never repeat it soon.
_recently_reserved: deque[int] = deque(maxlen=512)


def reserve_ports(count: int, *, exclude: Collection[int] = ()) -> list[int]:
    """`count` distinct ports that were free a moment ago, none of them in `exclude`.

    They are released before the caller's server binds them, so another program can still take one in
    between: callers retry the whole start when a server reports the address in use.
    """
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
            if port in _recently_reserved or port in ports or port in exclude:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    _recently_reserved.extend(ports)
    return ports
