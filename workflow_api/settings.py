"""WorkflowApi settings (GXWF_WORKFLOW_API_*, GXWF_CONSUMER_ID); server URLs come from the caller."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3


class WorkflowApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GXWF_", env_file=".env", extra="ignore")

    # Set on a per-consumer deployment (the Kubernetes backend's Secret): tokens of other consumers are refused.
    consumer_id: str | None = None

    # Set on a per-consumer deployment on a Kubernetes site: the consumer's data is reached only through the tenant
    # gateway with this token, and the process holds no NATS, MongoDB or S3 setting at all.
    workflow_api_gateway_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    workflow_api_gateway_token: SecretStr | None = None

    # One upload's body (a file, or an archive before unpacking).
    workflow_api_upload_limit_bytes: int = Field(default=8 * GIB, ge=1024)
    # An unpacked archive: files and bytes in all.
    workflow_api_archive_files_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    workflow_api_archive_bytes_limit: int = Field(default=16 * GIB, ge=1024)
    workflow_api_presign_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    workflow_api_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # A token's grant is looked up again after this long (0: on every request); so a revocation takes effect
    # within it.
    workflow_api_auth_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # How often a followed log looks for new output and the run's state.
    workflow_api_log_poll_seconds: float = Field(default=0.25, gt=0, le=10)
    # A result download holds the `result-download:<run>` lease this long, renewed while it streams.
    workflow_api_download_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
