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
    # Unset: the keys the embedded stack generated (STATE_DIR/endpoints.json), for its own S3 only.
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "us-east-1"

    state_dir: Path = Path(".gxwf")

    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_seconds: list[float] = Field(default=[0.5, 2.0, 5.0, 15.0, 30.0])
    ack_wait_seconds: float = Field(default=30.0, gt=0)
    handler_concurrency: int = Field(default=8, ge=1, le=1024)
    duplicate_window_seconds: float = Field(default=600.0, gt=0)
    # The WF event stream's size limit; when full, publishes are refused (the EDC ingress answers 503) and no
    # acknowledged event is dropped.
    stream_max_bytes: int = Field(default=8 * 2**30, ge=1024 * 1024)
    # Copies of each stream in a NATS cluster; unset: one per server listed in GXWF_NATS_URL, up to 3.
    stream_replicas: int | None = Field(default=None, ge=1, le=5)
    # The embedded NATS servers `gxwf up` and `gxwf stack up` start (one JetStream cluster when more than 1).
    nats_nodes: int = Field(default=1, ge=1, le=7)
    watch_interval_seconds: float = Field(default=0.25, gt=0)
    dispatch_interval_seconds: float = Field(default=0.25, gt=0)
    # How soon a run that started running gets its live log followed into the log stream.
    log_ship_interval_seconds: float = Field(default=0.5, gt=0)
    # Development and tests only: a wf.run.requested naming an asset the catalogue does not know runs the command
    # it carries. Off (the default), the jobs handler runs only what the catalogue holds for the asset version.
    adhoc_runs: bool = False
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

    # Where runs execute: processes on this machine, a Job each on a Kubernetes cluster, or a batch job each on a
    # Slurm cluster (the site GXWF_COMPUTE_SITE names in the sites file, with its `slurm:` section).
    compute_backend: Literal["local", "kubernetes", "slurm"] = "local"
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
    # Run pods reach only the cluster DNS and the object store (a NetworkPolicy). A store given by IP address is
    # allowed as that address; one given by host name needs its CIDRs (outside the cluster) or its namespace
    # and pod labels (inside it), since a NetworkPolicy cannot name hosts.
    run_egress_object_store_cidrs: list[str] = Field(default_factory=list)
    run_egress_object_store_namespace: str | None = None
    run_egress_object_store_pod_labels: dict[str, str] = Field(default_factory=dict)
    # The port run pods reach the object store on; unset: the endpoint URL's.
    run_egress_object_store_port: int | None = Field(default=None, ge=1, le=65535)
    run_egress_dns_namespace: str = "kube-system"
    run_egress_dns_pod_labels: dict[str, str] = Field(default_factory=lambda: {"k8s-app": "kube-dns"})
    # The sizeLimit of each emptyDir of a run pod (/tmp, outputs, inputs, staging scratch).
    run_scratch_size_limit: str = Field(default="2Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    # What a run's outputs archive may unpack to on the handlers' disk: beyond it the run's results fail.
    run_outputs_max_bytes: int = Field(default=10 * 2**30, ge=1)
    run_outputs_max_files: int = Field(default=10_000, ge=1)

    # A run's results stay in the object store this long after the run ended (also after the consumer's
    # deprovisioning), then are deleted; 0 keeps them forever. Checked every retention_interval_seconds.
    result_retention_days: float = Field(default=30.0, ge=0)
    retention_interval_seconds: float = Field(default=600.0, gt=0)

    # Comma separated NAME=sleep:SECONDS or NAME=raise; empty in production.
    fault_points: str = ""

    # Where `handlers run --health-port` listens: loopback unless a platform's probes need more.
    health_host: str = "127.0.0.1"
    # `handlers run --replicas N`: a replica that died more than this many times within the window is given up
    # on, and the parent stops with one line saying which.
    replica_restart_limit: int = Field(default=10, ge=0, le=1000)
    replica_restart_window_seconds: float = Field(default=120.0, gt=0)
    # How often a replica records its figures (events handled, loop passes) in the store's replica_stats.
    replica_stats_interval_seconds: float = Field(default=2.0, gt=0)

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
