"""Tenant gateway settings (GXWF_GATEWAY_KEY, GXWF_TENANT_GATEWAY_*); server URLs come from the caller."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3


class TenantGatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GXWF_", env_file=".env", extra="ignore")

    # The key the deployment handler mints WorkflowApi tokens with (the same value on both sides).
    gateway_key: SecretStr | None = None
    # A JSON request body (a document, an event, a list of keys).
    tenant_gateway_body_limit_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # One object written through the gateway (a WorkflowApi's upload limit is at most this).
    tenant_gateway_upload_limit_bytes: int = Field(default=8 * GIB, ge=1024)
    # The longest a presigned URL the gateway issues may live, and a download lease be held.
    tenant_gateway_presign_max_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # A token's deployment is looked up again after this long (0: on every request): a deleted deployment's token
    # stops working within it.
    tenant_gateway_auth_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    tenant_gateway_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
