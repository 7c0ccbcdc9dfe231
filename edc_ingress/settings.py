"""EDC-facing settings (GXWF_EDC_*), and the connector registry built from them and an optional file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.connectors import ConnectorRegistry, EdcConnector, HeaderName, HttpUrl, ManagementApiVersion

# NATS refuses messages over its max_payload (1 MiB by default), and an event carries the body plus its
# envelope: keep the default body limit well below it so a valid request never fails at publish time.
DEFAULT_BODY_LIMIT = 256 * 1024


class ConfigError(ValueError):
    """The EDC configuration cannot be used; the message names the setting or file entry to fix."""


class EdcSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GXWF_", env_file=".env", extra="ignore")

    # The default connector. No built-in secret: `gxwf up` generates one when this is unset.
    edc_api_key: SecretStr | None = None
    edc_api_key_header: HeaderName = "x-api-key"
    # Accept the default connector's secret in the query too (stock provisioners send no headers); off by default.
    edc_api_key_in_query: bool = False
    edc_connector_name: str = "default"
    # More connectors (YAML or JSON), see docs/edc.md and deploy/edc/connectors.yaml.
    edc_connectors_file: Path | None = None

    edc_management_url: HttpUrl | None = None
    edc_management_api_version: ManagementApiVersion = "v3"
    edc_management_api_key: SecretStr | None = None
    edc_management_api_key_header: HeaderName = "x-api-key"
    # Where the default connector may be called back (its provisioner callbacks); unset: the management URL's
    # origin, or a registered simulator's. A callbackAddress anywhere else is refused.
    edc_callback_url: HttpUrl | None = None
    # OAuth2 for the default connector (docs/edc.md, "DPS authentication"). Inbound: bearer JWTs of this issuer,
    # checked against its JWKS, are accepted like the API key.
    edc_jwks_url: HttpUrl | None = None
    edc_token_issuer: str | None = None
    edc_token_audience: str | None = None
    edc_token_subject: str | None = None
    # Outbound: callbacks carry a token got from this endpoint with the client-credentials grant.
    edc_token_url: HttpUrl | None = None
    edc_client_id: str | None = None
    edc_client_secret: SecretStr | None = None
    edc_token_scope: str | None = None
    edc_token_request_audience: str | None = None
    # Data Plane Signaling: the default connector's control-plane signaling base (its `signaling_url`).
    edc_signaling_url: HttpUrl | None = None
    # How this data plane names itself in Data Plane Signaling answers (dataplaneId).
    edc_dataplane_id: str = Field(default="gxwf", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")

    edc_ingress_host: str = "127.0.0.1"
    edc_ingress_port: int = Field(default=8480, ge=0, le=65535)
    edc_body_limit_bytes: int = Field(default=DEFAULT_BODY_LIMIT, ge=1024, le=16 * 1024 * 1024)
    # Requests per second one connector may make, in bursts of up to the burst; beyond it 429 with Retry-After.
    # Per connector and per ingress process; 0: no limit.
    edc_rate_limit_per_second: float = Field(default=20.0, ge=0)
    edc_rate_limit_burst: int = Field(default=100, ge=1)
    # Longer than this without JetStream's ack: answer 503, which EDC retries.
    edc_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    edc_client_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    edc_client_attempts: int = Field(default=5, ge=1, le=20)
    edc_client_backoff_seconds: list[float] = Field(default=[0.2, 0.5, 1.0, 2.0, 5.0], min_length=1)


def connector_registry(settings: EdcSettings) -> ConnectorRegistry:
    """The default connector from GXWF_EDC_* plus the connectors file; at least one must be configured."""
    connectors: list[EdcConnector] = []
    if settings.edc_api_key is not None:
        try:
            connectors.append(
                EdcConnector(
                    name=settings.edc_connector_name,
                    api_key_header=settings.edc_api_key_header,
                    api_key=settings.edc_api_key,
                    api_key_in_query=settings.edc_api_key_in_query,
                    management_url=settings.edc_management_url,
                    management_api_version=settings.edc_management_api_version,
                    management_api_key_header=settings.edc_management_api_key_header,
                    management_api_key=settings.edc_management_api_key,
                    callback_urls=(settings.edc_callback_url,) if settings.edc_callback_url else (),
                    jwks_url=settings.edc_jwks_url,
                    token_issuer=settings.edc_token_issuer,
                    token_audience=settings.edc_token_audience,
                    token_subject=settings.edc_token_subject,
                    token_url=settings.edc_token_url,
                    client_id=settings.edc_client_id,
                    client_secret=settings.edc_client_secret,
                    scope=settings.edc_token_scope,
                    audience=settings.edc_token_request_audience,
                    signaling_url=settings.edc_signaling_url,
                )
            )
        except ValidationError as error:
            first = error.errors()[0]
            # A check across fields (the OAuth2 ones) names the first field of its message.
            across = first["msg"].removeprefix("Value error, ").split(" ", 1)[0].rstrip(",")
            field = str(first["loc"][0]) if first["loc"] else across
            renamed = {"api_key": "API_KEY", "name": "CONNECTOR_NAME", "callback_urls": "CALLBACK_URL"}
            renamed |= {"scope": "TOKEN_SCOPE", "audience": "TOKEN_REQUEST_AUDIENCE"}
            name = "GXWF_EDC_" + renamed.get(field, field.upper())
            raise ConfigError(f"{name}: {first['msg']}") from None
    if settings.edc_connectors_file is not None:
        connectors.extend(_from_file(settings.edc_connectors_file))
    if not connectors:
        raise ConfigError("no EDC connector configured: set GXWF_EDC_API_KEY or GXWF_EDC_CONNECTORS_FILE")
    try:
        return ConnectorRegistry(connectors=tuple(connectors))
    except ValidationError as error:
        raise ConfigError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None


def _from_file(path: Path) -> list[EdcConnector]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"GXWF_EDC_CONNECTORS_FILE {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(
            f"{path}: not YAML or JSON ({getattr(error, 'problem', None) or 'unreadable'}{where})"
        ) from None
    entries = loaded.get("connectors") if isinstance(loaded, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a mapping with a list `connectors`")
    result = []
    for index, entry in enumerate(entries):
        where = f"{path}: connectors[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping")
        try:
            result.append(EdcConnector.model_validate(_resolve_env(entry, where)))
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where}.{field}: {first['msg']}") from None
    return result


def _resolve_env(entry: dict[str, Any], where: str) -> dict[str, Any]:
    """`api_key_env: NAME` reads the secret from the environment, so the file itself holds no secret."""
    resolved = {k: v for k, v in entry.items() if not k.endswith("_env")}
    for key, value in entry.items():
        if not key.endswith("_env"):
            continue
        target = key.removesuffix("_env")
        if target not in ("api_key", "management_api_key", "client_secret"):
            raise ConfigError(
                f"{where}.{key}: only api_key_env, management_api_key_env and client_secret_env are read from "
                "the environment"
            )
        secret = os.environ.get(str(value))
        if secret is None:
            raise ConfigError(f"{where}.{key}: environment variable {value} is not set")
        resolved[target] = secret
    return resolved
