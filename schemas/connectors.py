"""The EDC connectors a deployment serves: how each proves who it is, and how we reach its management API."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator, model_validator

ConnectorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
# RFC 9110 token characters: what an HTTP header name may hold.
HeaderName = Annotated[str, StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")]
# Management API path segment: v3 (EDC 0.10-0.16), v4alpha (0.13-0.16), v4 (0.17+), v5beta ...
ManagementApiVersion = Annotated[str, StringConstraints(pattern=r"^v[0-9]+(alpha|beta)?$")]
HttpUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://[^\s/?#]+[^\s]*$")]

# A guessable secret ("password" in the poster's provisioner) is refused rather than accepted quietly.
MIN_SECRET_LENGTH = 16


class ManagementApi(BaseModel):
    """Where a connector's management API is and how to authenticate there.

    `registered`: learnt at run time (a connector simulator announced itself) rather than configured by the
    operator. Its key then goes only to URLs under `url`, never to another address a request named.
    """

    model_config = ConfigDict(frozen=True)

    url: HttpUrl
    api_version: ManagementApiVersion = "v3"
    key: SecretStr | None = None
    key_header: HeaderName = "x-api-key"
    registered: bool = False

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def covers(self, url: str) -> bool:
        """True when `url` is this management API or below it."""
        return url == self.url or url.startswith(self.url + "/")


class ClientCredentials(BaseModel):
    """An OAuth2 client-credentials grant at a connector's token endpoint."""

    model_config = ConfigDict(frozen=True)

    token_url: HttpUrl
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    audience: str | None = None


class EdcConnector(BaseModel):
    """One connector that may call the ingress, and that the EDC client calls back."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ConnectorName
    api_key_header: HeaderName = Field(
        default="x-api-key",
        description="Header (or, with api_key_in_query, query parameter) with the secret",
    )
    api_key: SecretStr = Field(description="Secret the connector presents to the ingress")
    api_key_in_query: bool = Field(
        default=False,
        description="Also accept the secret as a query parameter named like the header: only for stock "
        "provisioners that cannot send headers (a URL's query ends up in logs and proxies)",
    )
    management_url: HttpUrl | None = Field(
        default=None, description="Management API base, e.g. http://provider:8181/api/management"
    )
    management_api_version: ManagementApiVersion = "v3"
    management_api_key_header: HeaderName = "x-api-key"
    management_api_key: SecretStr | None = Field(
        default=None, description="Secret for the management API and the control-plane provisioner callback"
    )
    callback_urls: tuple[HttpUrl, ...] = Field(
        default=(),
        description="Bases a provision request's callbackAddress must lie under (scheme, host, port and path "
        "prefix); empty: the management URL's origin, and without a management URL nobody is called back",
    )
    # Inbound OAuth2: a bearer JWT from the connector's token issuer stands in for the API key.
    jwks_url: HttpUrl | None = Field(
        default=None, description="JWKS of the connector's token issuer; unset: its bearer tokens are refused"
    )
    token_issuer: str | None = Field(default=None, min_length=1, description="The `iss` its tokens must carry")
    token_audience: str | None = Field(default=None, min_length=1, description="The `aud` its tokens must carry")
    token_subject: str | None = Field(
        default=None, min_length=1, description="The `sub` its tokens must carry, when set"
    )
    # Outbound OAuth2: callbacks to this connector carry a bearer token got with the client-credentials grant.
    token_url: HttpUrl | None = Field(default=None, description="Token endpoint of the connector's issuer")
    client_id: str | None = Field(default=None, min_length=1, max_length=256)
    client_secret: SecretStr | None = None
    scope: str | None = Field(default=None, min_length=1, description="`scope` of the token request, when set")
    audience: str | None = Field(
        default=None, min_length=1, description="`audience` of the token request, when the issuer wants one"
    )

    signaling_url: HttpUrl | None = Field(
        default=None,
        description="Data Plane Signaling (EDC 0.18 and later): the control plane's signaling API base, e.g. "
        "http://provider:8181/api/signaling; the data flow callbacks go below it, and a start message's "
        "callbackAddress must lie under it",
    )

    def management(self) -> ManagementApi | None:
        """The management API configured for this connector, if any."""
        if self.management_url is None:
            return None
        return ManagementApi(
            url=self.management_url,
            api_version=self.management_api_version,
            key=self.management_api_key,
            key_header=self.management_api_key_header,
        )

    def client_credentials(self) -> ClientCredentials | None:
        """How to get a token for callbacks to this connector, when configured."""
        if self.token_url is None or self.client_id is None or self.client_secret is None:
            return None
        return ClientCredentials(
            token_url=self.token_url,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=self.scope,
            audience=self.audience,
        )

    @model_validator(mode="after")
    def _oauth2_complete(self) -> EdcConnector:
        # A JWKS without an expected issuer and audience would accept any token its keys ever signed.
        if self.jwks_url is not None and (self.token_issuer is None or self.token_audience is None):
            raise ValueError("jwks_url needs token_issuer and token_audience")
        if (self.token_issuer is not None or self.token_audience is not None) and self.jwks_url is None:
            raise ValueError("token_issuer and token_audience need jwks_url")
        outbound = (self.token_url, self.client_id, self.client_secret)
        if any(v is not None for v in outbound) and not all(v is not None for v in outbound):
            raise ValueError("token_url, client_id and client_secret go together")
        return self

    @field_validator("api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
        return value

    @field_validator("signaling_url")
    @classmethod
    def _plain_signaling(cls, value: str | None) -> str | None:
        if value is None:
            return None
        netloc = value.split("//", 1)[1].split("/", 1)[0]
        if "@" in netloc or any(ch in value for ch in "?#%\\"):
            raise ValueError(f"{value}: a signaling URL has no user info, query, fragment or percent-escapes")
        return value.rstrip("/")

    @field_validator("management_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("callback_urls")
    @classmethod
    def _plain_bases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            netloc = url.split("//", 1)[1].split("/", 1)[0]
            if "@" in netloc or any(ch in url for ch in "?#%\\"):
                raise ValueError(f"{url}: a callback base has no user info, query, fragment or percent-escapes")
        return tuple(url.rstrip("/") for url in value)


class ConnectorRegistry(BaseModel):
    """Every configured connector; names and credentials are unique so a caller maps to exactly one."""

    model_config = ConfigDict(frozen=True)

    connectors: tuple[EdcConnector, ...]

    @model_validator(mode="after")
    def _unique(self) -> ConnectorRegistry:
        names = [c.name for c in self.connectors]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"connector names must be unique: {', '.join(duplicated)}")
        credentials = [(c.api_key_header.lower(), c.api_key.get_secret_value()) for c in self.connectors]
        if len(set(credentials)) != len(credentials):
            raise ValueError("two connectors share a header and secret: each needs its own")
        claims = [(c.token_issuer, c.token_audience, c.token_subject) for c in self.connectors if c.jwks_url]
        if len(set(claims)) != len(claims):
            raise ValueError(
                "two connectors accept tokens of one issuer, audience and subject: give each its token_subject"
            )
        return self

    def get(self, name: str) -> EdcConnector:
        for connector in self.connectors:
            if connector.name == name:
                return connector
        raise KeyError(f"no EDC connector named {name!r} is configured")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.connectors]
