"""A small OAuth2 authorization server, as a connector's identity provider: a client-credentials token endpoint
issuing signed JWTs, and the JWKS to verify them, with key rotation. Listens on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from http_serving.server import Served

TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a secret)
JWKS_PATH = "/.well-known/jwks.json"
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: PrivateKey

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> SigningKey:
        private: PrivateKey
        if algorithm == "RS256":
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(f"unsupported algorithm {algorithm}: RS256, ES256 or EdDSA")
        return cls(secrets.token_hex(8), algorithm, private)

    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.algorithm)
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        return jwk | {"kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": self.kid} | (headers or {}))


@dataclass
class TokenRequest:
    client_id: str | None
    granted: bool
    form: dict[str, str]


@dataclass
class OAuth2Issuer:
    """Clients by id and secret; `audience`: the `aud` of tokens when the request names none."""

    audience: str
    algorithm: str = "RS256"
    lifetime: int = 300
    clients: dict[str, str] = field(default_factory=dict)
    keys: list[SigningKey] = field(default_factory=list)
    requests: list[TokenRequest] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    url: str | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(SigningKey.generate(self.algorithm))
        self._served = Served("oauth2-issuer", self.host, self.port)

    # -- what a test or the simulator asks of it ------------------------------------------------------------

    def add_client(self, client_id: str, secret: str | None = None) -> str:
        self.clients[client_id] = secret or secrets.token_urlsafe(24)
        return self.clients[client_id]

    @property
    def issuer(self) -> str:
        if self.url is None:
            raise RuntimeError("start the issuer first")
        return self.url

    @property
    def token_url(self) -> str:
        return self.issuer + TOKEN_PATH

    @property
    def jwks_url(self) -> str:
        return self.issuer + JWKS_PATH

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, *, keep_previous: bool = True) -> SigningKey:
        """A new signing key; the previous one stays in the JWKS (tokens it signed remain valid) unless not kept."""
        key = SigningKey.generate(self.algorithm)
        self.keys = [*self.keys, key] if keep_previous else [key]
        return key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}

    def issue(self, subject: str, *, audience: str | None = None, scope: str | None = None, **claims: Any) -> str:
        """A token as the token endpoint issues it; `claims` override (exp, iss, ...) for tests."""
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience or self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime,
            "jti": str(uuid.uuid4()),
            "client_id": subject,
        }
        if scope:
            body["scope"] = scope
        return self.current.sign(body | claims)

    # -- its HTTP side ---------------------------------------------------------------------------------------

    async def start(self) -> str:
        self.url = await self._served.start(self.app())
        return self.url

    async def stop(self) -> None:
        await self._served.stop()

    def app(self) -> FastAPI:
        app = FastAPI(title="OAuth2 issuer (simulated)", docs_url=None, redoc_url=None)

        @app.get(JWKS_PATH)
        async def jwks() -> dict[str, Any]:
            return self.jwks()

        @app.post(TOKEN_PATH)
        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            client_id, secret = _client_auth(request, form)
            known = client_id is not None and client_id in self.clients
            valid = known and secret is not None and hmac.compare_digest(self.clients[str(client_id)], secret)
            recorded = {k: v for k, v in form.items() if k != "client_secret"}
            if form.get("grant_type") != "client_credentials":
                self.requests.append(TokenRequest(client_id, False, recorded))
                return _error(400, "unsupported_grant_type")
            if not valid or client_id is None:
                self.requests.append(TokenRequest(client_id, False, recorded))
                return _error(401, "invalid_client")
            self.requests.append(TokenRequest(client_id, True, recorded))
            access = self.issue(client_id, audience=form.get("audience"), scope=form.get("scope"))
            answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": self.lifetime}
            if form.get("scope"):
                answer["scope"] = form["scope"]
            return JSONResponse(answer, headers={"Cache-Control": "no-store"})

        return app


def _client_auth(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    """client_secret_basic, else client_secret_post (RFC 6749 2.3.1)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return unquote_plus(user), unquote_plus(password)
    return form.get("client_id"), form.get("client_secret")


def _error(status: int, code: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="token"'} if status == 401 else {}
    return JSONResponse({"error": code}, status_code=status, headers=headers)
