"""Who may read the dashboard and who may act: bearer tokens or the session cookie a login sets, and the plain
ASGI guard that turns a `?token=` link into that cookie and puts the security headers on every response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dashboard.auth import ACTION_HEADER, COOKIE, Role, Sessions, Tokens
from dashboard.problems import Problem
from http_serving.rate_limits import TokenBuckets, retry_after


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    pass


def wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and not request.url.path.startswith("/api/")


class LoginThrottle:
    """Failed attempts to present a token (the login form, `?token=`, a bearer header): each client address may
    fail `per_address` times a minute, everyone together `failures` times, so neither one client nor many can
    guess at tokens quickly. Past either, every attempt is refused with 429 and Retry-After until it refills;
    successful ones cost nothing, so the API's bearer clients are not slowed."""

    def __init__(self, per_address: float = 10, failures: float = 100) -> None:
        self.addresses = TokenBuckets(per_address / 60, per_address)
        self.everyone = TokenBuckets(failures / 60, failures)

    def attempt(self, request: Request) -> None:
        """Before a token is checked: Problem 429 when this client, or everyone, has failed too often."""
        wait = max(self.everyone.wait("*"), self.addresses.wait(_address(request)))
        if wait > 0:
            raise Problem(
                429,
                "too-many-requests",
                "Too many login attempts",
                "too many failed attempts to present a dashboard token; retry after the time given",
                headers={"Retry-After": retry_after(wait)},
            )

    def failed(self, request: Request) -> None:
        self.addresses.take(_address(request))
        self.everyone.take("*")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def presented_role(request: Request, tokens: Tokens, sessions: Sessions) -> Role | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return tokens.role_of(header[7:].strip())
    return sessions.role_of(request.cookies.get(COOKIE))


_SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


class Guard:
    """Plain ASGI (a BaseHTTPMiddleware would copy every chunk of every live tail through a memory stream):
    `?token=` once becomes a session cookie, and every response gets the security headers."""

    def __init__(self, app: ASGIApp, token_once: Callable[[Request, str], Awaitable[Response]]) -> None:
        self.app = app
        self.token_once = token_once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.query_params.get("token")
        if token is not None and scope["method"] == "GET":
            response = await self.token_once(request, token)
            await self._send_with_headers(response, scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)

    async def _send_with_headers(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)


def reader(request: Request) -> Role:
    dash = request.app.state.dashboard
    bearer = request.headers.get("authorization", "").lower().startswith("bearer ")
    if bearer:
        dash.logins.attempt(request)
    role = presented_role(request, dash.tokens, dash.sessions)
    if role is None:
        if bearer:
            dash.logins.failed(request)
        raise Unauthorized()
    return role


def admin(request: Request) -> Role:
    role = reader(request)
    if role is not Role.ADMIN:
        raise Forbidden()
    # With a cookie (a browser), only our script, which adds this header, may act: no cross-site posts.
    if not request.headers.get("authorization") and request.headers.get(ACTION_HEADER) != "1":
        raise Problem(403, "forbidden", "Forbidden", f"browser requests that change something need {ACTION_HEADER}: 1")
    return role


Reader = Annotated[Role, Depends(reader)]
Admin = Annotated[Role, Depends(admin)]


def local_target(target: str) -> str:
    """Only paths of this dashboard after a login: never an open redirect to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/tail"


def set_session(response: Response, request: Request, value: str, lifetime_seconds: float) -> None:
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
        max_age=int(lifetime_seconds),
    )
