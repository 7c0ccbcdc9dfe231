"""Every setting, from GXWF_* environment variables (or a .env file); nothing is hard-coded elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gxwf.errors import UserError
from gxwf.logging_setup import configure_logging

AnySettings = TypeVar("AnySettings", bound=BaseSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GXWF_", env_file=".env", extra="ignore")

    # Unset: the embedded stack starts that server. Set: that server is used and none is started.
    nats_url: str | None = None
    mongo_url: str | None = None
    s3_endpoint: str | None = None

    mongo_database: str = Field(default="gxwf", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    s3_bucket: str = Field(default="gxwf", min_length=3, max_length=63)
    s3_access_key: str = "gxwf"
    s3_secret_key: SecretStr = SecretStr("gxwf-secret")
    s3_region: str = "us-east-1"

    state_dir: Path = Path(".gxwf")

    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_seconds: list[float] = Field(default=[0.5, 2.0, 5.0, 15.0, 30.0])
    ack_wait_seconds: float = Field(default=30.0, gt=0)
    handler_concurrency: int = Field(default=8, ge=1, le=1024)
    duplicate_window_seconds: float = Field(default=600.0, gt=0)
    watch_interval_seconds: float = Field(default=0.25, gt=0)
    dispatch_interval_seconds: float = Field(default=0.25, gt=0)
    # How soon a run that started running gets its live log followed into the log stream.
    log_ship_interval_seconds: float = Field(default=0.5, gt=0)
    runs_per_consumer: int = Field(default=4, ge=1, le=10_000)
    runs_per_site: int = Field(default=16, ge=1, le=100_000)

    # Compute sites (deploy/sites.example.yaml); unset: this machine as the one local site.
    sites_file: Path | None = None
    # Where the shared WorkflowApi answers consumers whose deployment is on a local site.
    workflow_api_url: str = Field(default="http://127.0.0.1:8490", pattern=r"^https?://\S+$")
    deploy_timeout_seconds: float = Field(default=20.0, gt=0)
    # The image of the per-consumer WorkflowApi on Kubernetes sites.
    workflow_api_image: str = "ghcr.io/gaiax-workflows/gxwf:0.1.0"
    # Where per-consumer WorkflowApis on Kubernetes sites reach their consumer's data (`gxwf tenant-gateway`);
    # required when a Kubernetes site deploys them.
    tenant_gateway_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    # The key tenant gateway tokens are minted with (the deployment handler) and checked with (the gateway).
    gateway_key: SecretStr | None = None

    # Where runs execute: processes on this machine, or a Job each on a Kubernetes cluster.
    compute_backend: Literal["local", "kubernetes"] = "local"
    # For the kubernetes compute backend; unset: in-cluster config inside a pod, else ~/.kube/config.
    kubeconfig: Path | None = None
    kube_context: str | None = None
    # The compute site's name (placement, per-site run limits); unset: the backend's kind.
    compute_site: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    # Image for assets that name none, on the kubernetes compute backend.
    run_image: str | None = None
    stop_timeout_seconds: float = Field(default=30.0, gt=0)
    # Answer run status from list+watch caches of the cluster's run Jobs and pods (else: API reads each pass).
    kubernetes_watch: bool = True

    # A run's results stay in the object store this long after the run ended (also after the consumer's
    # deprovisioning), then are deleted; 0 keeps them forever. Checked every retention_interval_seconds.
    result_retention_days: float = Field(default=30.0, ge=0)
    retention_interval_seconds: float = Field(default=600.0, gt=0)

    # Comma separated NAME=sleep:SECONDS or NAME=raise; empty in production.
    fault_points: str = ""

    # Where `handlers run --health-port` listens: loopback unless a platform's probes need more.
    health_host: str = "127.0.0.1"

    log_format: Literal["console", "json"] = "console"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("state_dir", "sites_file", "kubeconfig")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Resolved once, here: run processes start with their own work directory as cwd, so a relative
        # state dir (the default `.gxwf`) handed to them would name another place.
        return None if value is None else value.expanduser().absolute()


def load(kind: type[AnySettings], **values: Any) -> AnySettings:
    """`kind` from GXWF_* variables (and `values`, which go through the same validation); a bad one is
    UserError naming the variable, so the CLI prints one line instead of pydantic's report."""
    try:
        return kind(**values)
    except ValidationError as error:
        first = error.errors()[0]
        # The field, not its inner position: GXWF_BACKOFF_SECONDS, not GXWF_BACKOFF_SECONDS_0.
        field = str(first["loc"][0]) if first["loc"] else "settings"
        raise UserError(f"GXWF_{field.upper()}: {first['msg']}") from None


def load_settings(state_dir: Path | None = None) -> Settings:
    """What every command starts with: the settings (`--state-dir` wins over GXWF_STATE_DIR) and logging
    configured from them."""
    settings = load(Settings) if state_dir is None else load(Settings, state_dir=state_dir)
    configure_logging(settings.log_format, settings.log_level)
    return settings
