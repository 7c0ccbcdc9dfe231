"""Compute sites (a config file of named sites) and placement: which site can run an asset."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from schemas.assets import Resources, memory_bytes

SiteName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesTarget(_Strict):
    kubeconfig: str | None = Field(default=None, description="Path; None with in_cluster false: ~/.kube/config")
    context: str | None = None
    in_cluster: bool = False
    storage_class: str | None = None
    gpu_resource_name: str = "nvidia.com/gpu"
    ingress_class: str | None = Field(default=None, description="Set with ingress_domain: an Ingress per consumer")
    ingress_domain: str | None = Field(default=None, description="The consumer's host is <namespace>.<domain>")
    # Only these namespaces reach a consumer's WorkflowApi: the ingress controller and the connector's data plane.
    allowed_namespaces: list[str] = Field(default_factory=lambda: ["ingress-nginx", "edc"])

    @field_validator("allowed_namespaces")
    @classmethod
    def _some_namespace(cls, value: list[str]) -> list[str]:
        # A NetworkPolicy rule with an empty `from` admits every source: empty must not mean "everyone".
        if not value:
            raise ValueError(
                "must name at least one namespace (the ingress controller's, the connector's): "
                "an empty list would let every pod of the cluster reach the consumers' WorkflowApis"
            )
        if any(not name.strip() for name in value):
            raise ValueError("namespace names must not be empty")
        return value


class SlurmTokenSource(_Strict):
    """Where the JWT for slurmrestd comes from: exactly one of a file, an environment variable, or Slurm's own
    HS256 key (AuthAltParameters=jwt_key=...), with which the backend mints short-lived tokens itself."""

    token_file: str | None = Field(default=None, description="A file holding the token (SLURM_JWT=... or bare)")
    token_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="A variable")
    jwt_key_file: str | None = Field(default=None, description="Slurm's jwt_key file: tokens are minted here")
    # Minted tokens live this long and are renewed once less than a third of it is left.
    token_lifespan_seconds: int = Field(default=1800, ge=60, le=24 * 3600)

    @model_validator(mode="after")
    def _one_source(self) -> SlurmTokenSource:
        given = [name for name in ("token_file", "token_env", "jwt_key_file") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "the `slurm:` section needs exactly one token source (token_file, token_env or jwt_key_file), "
                f"got {', '.join(given) or 'none'}"
            )
        return self


class SlurmTarget(SlurmTokenSource):
    """A Slurm cluster reached through slurmrestd; runs are batch jobs, their directories under `job_root` on a
    filesystem the handlers and the compute nodes share."""

    url: str = Field(pattern=r"^https?://\S+$", description="slurmrestd, e.g. http://login1:6820")
    api_version: Literal["v0.0.38", "v0.0.39", "v0.0.40", "v0.0.41", "v0.0.42"] = "v0.0.38"
    user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
    partition: str | None = Field(default=None, max_length=128, description="None: the cluster's default")
    account: str | None = Field(default=None, max_length=128)
    qos: str | None = Field(default=None, max_length=128)
    max_time_limit_minutes: int | None = Field(
        default=None,
        ge=1,
        description="The partition's MaxTime: a job's limit is its asset's running limit in whole minutes, "
        "refused at start beyond this",
    )
    gpu_gres: str = Field(default="gpu", pattern=r"^[A-Za-z0-9_]+$", description="The GRES name of GPUs")
    job_root: str = Field(min_length=1, description="Absolute; shared by the handlers and the compute nodes")
    container_runtime: Literal["apptainer", "enroot", "none"] = "none"
    gxwf_command: list[str] | None = Field(
        default=None, description="How a job runs gxwf on a node (its stage steps); None: this interpreter's"
    )
    job_path: str = Field(default="/usr/local/bin:/usr/bin:/bin", description="PATH of the batch script")

    @field_validator("job_root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path")
        return value


class Capabilities(_Strict):
    cpu: float = Field(gt=0, description="Cores one deployment or run may use at most")
    memory: str = Field(description="Memory one deployment or run may use at most, e.g. 64Gi")
    gpu: int = Field(default=0, ge=0)
    gpu_types: list[str] = Field(default_factory=list, description="Empty with gpu > 0: unnamed GPUs")
    labels: list[str] = Field(default_factory=list, description="Data locality, e.g. dlr-earth-observation")

    @field_validator("memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        memory_bytes(value)
        return value


class ConsumerQuota(_Strict):
    """What one consumer may hold on a site at once; unset fields are not limited beyond the site's own limits.

    Enforced by the jobs dispatcher on every backend (a run waits in the queue until it fits, and fails at
    once when it could never fit), and on Kubernetes also as the ResourceQuota of the consumer's namespace."""

    runs: int | None = Field(default=None, ge=1, le=10_000, description="Runs pending or running at once")
    cpu: float | None = Field(default=None, gt=0, description="Cores of all its active runs together")
    memory: str | None = Field(default=None, description="Memory of all its active runs together, e.g. 16Gi")
    gpu: int | None = Field(default=None, ge=0, description="GPUs of all its active runs together")
    ephemeral_storage: str | None = Field(
        default="50Gi",
        description="Node disk all its run pods' containers may use together (Kubernetes); null: not limited",
    )

    @field_validator("memory", "ephemeral_storage")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None:
            memory_bytes(value)
        return value

    def shortfalls(self, cpu: float, memory: int, gpu: int) -> list[str]:
        """Why a run needing this much can never fit, however long it waits; empty when it can."""
        missing: list[str] = []
        if self.cpu is not None and cpu > self.cpu:
            missing.append(f"{cpu:g} cpu > {self.cpu:g}")
        if self.memory is not None and memory > memory_bytes(self.memory):
            missing.append(f"memory {memory // 2**20}Mi > {self.memory}")
        if self.gpu is not None and gpu > self.gpu:
            missing.append(f"{gpu} gpu > {self.gpu}")
        return missing


class Site(_Strict):
    name: SiteName
    description: str = ""
    backend: Literal["local", "kubernetes", "slurm"]
    kubernetes: KubernetesTarget | None = None
    slurm: SlurmTarget | None = None
    capabilities: Capabilities
    consumer_quota: ConsumerQuota = Field(default_factory=ConsumerQuota)

    @model_validator(mode="after")
    def _target(self) -> Site:
        if self.backend == "kubernetes" and self.kubernetes is None:
            raise ValueError(f"site {self.name}: backend kubernetes needs a `kubernetes:` section")
        if self.backend == "slurm" and self.slurm is None:
            raise ValueError(f"site {self.name}: backend slurm needs a `slurm:` section")
        return self

    def shortfalls(self, needs: Resources, labels: list[str]) -> list[str]:
        """Why this site cannot take an asset; empty when it can."""
        have = self.capabilities
        missing: list[str] = []
        if needs.cpu > have.cpu:
            missing.append(f"{needs.cpu:g} cpu > {have.cpu:g}")
        if needs.memory_bytes > memory_bytes(have.memory):
            missing.append(f"memory {needs.memory} > {have.memory}")
        if needs.gpu > have.gpu:
            missing.append(f"{needs.gpu} gpu > {have.gpu}")
        elif needs.gpu and needs.gpu_type and have.gpu_types and needs.gpu_type not in have.gpu_types:
            missing.append(f"gpu type {needs.gpu_type} not in {', '.join(have.gpu_types)}")
        absent = [label for label in labels if label not in have.labels]
        if absent:
            missing.append(f"data labels {', '.join(absent)} missing")
        return missing


class SitesConfig(_Strict):
    sites: list[Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SitesConfig:
        names = [s.name for s in self.sites]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"site names must be unique: {', '.join(repeated)}")
        return self


class NoSiteFits(Exception):
    """No configured site can take the asset; the message says why for each one."""


def place(needs: Resources, labels: list[str], sites: list[Site], available: set[str] | None = None) -> Site:
    """The fitting site that wastes least: a CPU asset goes to a site without GPUs when one fits, so GPUs
    stay free for the assets that need them. Ties keep the order of the config file.

    `available`: backends this deployment can drive; a site on another backend does not fit."""
    reasons: list[str] = []
    fitting: list[tuple[int, int, Site]] = []
    for order, site in enumerate(sites):
        missing = site.shortfalls(needs, labels)
        if available is not None and site.backend not in available:
            missing.append(f"backend {site.backend} not enabled here")
        if missing:
            reasons.append(f"{site.name}: {'; '.join(missing)}")
        else:
            fitting.append((site.capabilities.gpu - needs.gpu, order, site))
    if not fitting:
        raise NoSiteFits("no site fits: " + " | ".join(reasons) if reasons else "no site is configured")
    return min(fitting, key=lambda f: (f[0], f[1]))[2]


def local_default(cpu: float, memory: str) -> SitesConfig:
    """What `gxwf up` uses without a sites file: this machine, no GPU."""
    return SitesConfig(
        sites=[
            Site(
                name="local",
                description="this machine",
                backend="local",
                capabilities=Capabilities(cpu=cpu, memory=memory),
            )
        ]
    )
