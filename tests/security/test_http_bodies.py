"""Attack: a 20 MB body sent without credentials to every HTTP service, announced (Content-Length) or chunked.

Each service runs as its own process, started the way an operator starts it (`gxwf workflow-api`,
`gxwf edc-ingress`, `gxwf dashboard`), so what is measured is that server's memory alone: its peak resident set
(VmHWM in /proc/<pid>/status, reset just before the attack through /proc/<pid>/clear_refs) may grow by less
than 10 MB while it answers 413 problem+json.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.stack_env import server_env

if TYPE_CHECKING:
    from devstack import StackEndpoints

pytestmark = pytest.mark.servers

MB = 1024 * 1024
ATTACK_BYTES = 20 * MB
# A JSON array of ten million numbers: 20 MB on the wire, several times that once parsed.
_CHUNK = b"1," * 32 * 1024


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str) -> None:
        self.proc = proc
        self.url = url

    def status(self, field: str) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for {self.proc.pid}")

    def reset_peak(self) -> int:
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
        return self.status("VmRSS")


def _start(args: list[str], env: dict[str, str], marker: str) -> Server:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gxwf", *args, "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    line = proc.stdout.readline() if ready else ""
    if marker not in line:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{args[0]} did not start: {line!r}")
    return Server(proc, line.split()[-1])


@pytest.fixture(scope="module")
def servers(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    state = tmp_path_factory.mktemp("state")
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")}
        | server_env(stack)
        | {
            "GXWF_MONGO_DATABASE": f"t_{uuid.uuid4().hex[:12]}",
            "GXWF_STATE_DIR": str(state),
            "GXWF_EDC_API_KEY": "body-attack-key-0123456789",
            "GXWF_DASHBOARD_TOKEN": "operator-token-0123456789",
            "GXWF_DASHBOARD_ADMIN_TOKEN": "admin-token-0123456789ab",
        }
    )
    started: dict[str, Server] = {}
    try:
        started["workflow-api"] = _start(["workflow-api"], env, "workflow api listening on")
        started["edc-ingress"] = _start(["edc-ingress"], env, "edc ingress listening on")
        started["dashboard"] = _start(["dashboard"], env, "dashboard listening on")
        yield started
    finally:
        for server in started.values():
            server.proc.terminate()
        for server in started.values():
            try:
                server.proc.wait(30)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


def send_body(url: str, path: str, content_type: str, *, chunked: bool) -> tuple[int, dict[str, str], bytes]:
    """POST ATTACK_BYTES to `path` without credentials, as fast as the server takes them, stopping when it answers;
    the answer's status, headers and body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
    try:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {ATTACK_BYTES}"
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
        sock.sendall(head.encode())
        sent = 0
        first = b"[" if content_type.endswith("json") else b"token="
        while sent < ATTACK_BYTES:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            data = first + _CHUNK[len(first) :] if sent == 0 else _CHUNK
            if sent + len(data) >= ATTACK_BYTES:
                data = data[: ATTACK_BYTES - sent - 2] + (b"1]" if first == b"[" else b"xx")
            try:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(data)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        return _read_response(sock)
    finally:
        sock.close()


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        assert data, f"connection closed without an answer: {received!r}"
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    return int(lines[0].split()[1]), headers, body[:length]


TARGETS = [
    ("workflow-api", "/v1/runs", "application/json"),
    ("workflow-api", "/v1/inputs/uploads", "application/json"),
    ("edc-ingress", "/edc/events", "application/json"),
    ("dashboard", "/login", "application/x-www-form-urlencoded"),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize(("service", "path", "content_type"), TARGETS, ids=[f"{t[0]}{t[1]}" for t in TARGETS])
def test_a_big_unauthenticated_body_is_refused_before_it_is_read(
    servers: dict[str, Server], service: str, path: str, content_type: str, chunked: bool
) -> None:
    server = servers[service]
    before = server.reset_peak()
    status, headers, body = send_body(server.url, path, content_type, chunked=chunked)
    grown = server.status("VmHWM") - before
    assert grown < 10 * MB, f"{service} peak RSS grew by {grown / MB:.1f} MB (answered {status})"
    assert status == 413, body[:300]
    assert headers["content-type"] == "application/problem+json"
    assert b'"field":"body"' in body
    assert server.proc.poll() is None


def test_an_unauthenticated_upload_is_refused_without_reading_it(servers: dict[str, Server]) -> None:
    """The upload route streams up to its own (large) limit: without a token it answers 401 and reads nothing."""
    server = servers["workflow-api"]
    before = server.reset_peak()
    status, _, _ = send_body(server.url, "/v1/inputs?name=x", "application/octet-stream", chunked=True)
    assert status == 401
    assert server.status("VmHWM") - before < 10 * MB
