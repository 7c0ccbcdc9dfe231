"""WorkflowApi settings (GXWF_WORKFLOW_API_*, GXWF_CONSUMER_ID); server URLs come from the caller."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

GIB = 1024**3


class WorkflowApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GXWF_", env_file=".env", extra="ignore")

    # Set on a per-consumer deployment (the Kubernetes backend's Secret): tokens of other consumers are refused.
    consumer_id: str | None = None

    # Any other request's body (JSON): refused with 413 beyond this, before it is parsed or authenticated.
    workflow_api_json_limit_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Set on a per-consumer deployment on a Kubernetes site: the consumer's data is reached only through the tenant
    # gateway with this token, and the process holds no NATS, MongoDB or S3 setting at all.
    workflow_api_gateway_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    workflow_api_gateway_token: SecretStr | None = None

    # One upload's body (a file, or an archive before unpacking).
    workflow_api_upload_limit_bytes: int = Field(default=8 * GIB, ge=1024)
    # An unpacked archive: files and bytes in all.
    workflow_api_archive_files_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    workflow_api_archive_bytes_limit: int = Field(default=16 * GIB, ge=1024)
    # A presigned upload URL's validity (a PUT must start within it; S3 does not cut one that runs longer).
    workflow_api_presign_seconds: int = Field(default=900, ge=60, le=7 * 24 * 3600)
    # A presigned download URL's validity: short, since whoever holds the URL reads the file, token or not.
    workflow_api_download_url_seconds: int = Field(default=300, ge=10, le=24 * 3600)
    workflow_api_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # A token's grant is looked up again after this long (0: on every request); so a revocation takes effect
    # within it.
    workflow_api_auth_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    # How long a revoked token (its transfer deprovisioned) may still read its runs, logs and results; 0: not at all.
    workflow_api_revoked_grace_seconds: float = Field(default=0.0, ge=0, le=90 * 24 * 3600)
    # How often a followed log looks for new output and the run's state.
    workflow_api_log_poll_seconds: float = Field(default=0.25, gt=0, le=10)
    # Log follows one consumer may have open at once (429 beyond), and how long each lasts before it ends with a
    # `reconnect` event (the client resumes with Last-Event-ID, nothing lost).
    workflow_api_log_follows_per_consumer: int = Field(default=8, ge=1, le=1000)
    workflow_api_log_follow_seconds: float = Field(default=900.0, gt=0, le=24 * 3600)
    # A followed run still not queued this long after its start was recorded (its publish failed and was never
    # retried) ends the follow with state `requested`.
    workflow_api_log_queue_wait_seconds: float = Field(default=120.0, gt=0, le=24 * 3600)
    # A result download holds the `result-download:<run>` lease this long, renewed while it streams.
    workflow_api_download_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    # No download (streamed, or a presigned URL's validity) holds it longer than this in all: a download that
    # takes longer ends there (resume it with Range), and retention is never held off for ever.
    workflow_api_download_lease_max_seconds: float = Field(default=6 * 3600.0, ge=1, le=7 * 24 * 3600)
