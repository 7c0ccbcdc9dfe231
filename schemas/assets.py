"""WorkflowAsset definitions as operators write them (deploy/assets/*.yaml), and their stored versions."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from schemas.documents import utcnow

AssetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
EdcAssetId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\s\x00]+$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]

_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?$")
_FACTORS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_FACTORS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


# Environment variables that steer how the workload's process starts or where its platform data lives: a
# parameter of these names (passed to the workload as environment) would let a run request change the program
# that runs (LD_PRELOAD, PATH, PYTHONPATH...) or what the platform tells it (GXWF_*). Compared upper-cased.
RESERVED_ENV_NAMES = frozenset(
    {
        "PATH",
        "HOME",
        "SHELL",
        "TMPDIR",
        "IFS",
        "ENV",
        "BASH_ENV",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONSTARTUP",
        "PYTHONINSPECT",
        "PERL5LIB",
        "PERL5OPT",
        "RUBYOPT",
        "RUBYLIB",
        "NODE_OPTIONS",
        "NODE_PATH",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
    }
)
# SLURM_/SBATCH_/SRUN_ steer Slurm's tools, APPTAINER*/SINGULARITY*/ENROOT_ the container runtimes of Slurm
# sites (APPTAINER_BIND would mount more of the node into the container).
RESERVED_ENV_PREFIXES = (
    "GXWF_",
    "LD_",
    "DYLD_",
    "SLURM_",
    "SBATCH_",
    "SRUN_",
    "APPTAINER",
    "SINGULARITY",
    "ENROOT_",
)


def reserved_env_name(name: str) -> bool:
    upper = name.upper()
    return upper in RESERVED_ENV_NAMES or upper.startswith(RESERVED_ENV_PREFIXES)


def memory_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity ("512Mi", "2G", "1073741824") in bytes."""
    match = _MEMORY.match(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a memory quantity such as 512Mi or 4Gi")
    return int(float(match.group(1)) * _FACTORS[match.group(2)])


class _Strict(BaseModel):
    # A typo in a definition (say `gpus:`) must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True)


class FileInput(_Strict):
    kind: Literal["file", "directory"]
    name: Name
    path: str = Field(min_length=1, max_length=1024, description="Where the workload finds it")
    required: bool = True
    description: str = ""


class ParameterInput(_Strict):
    kind: Literal["parameter"]
    name: Name = Field(description="Passed to the workload as an environment variable of this name")
    type: Literal["string", "integer", "number", "boolean"] = "string"
    default: str | int | float | bool | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: list[str | int | float] | None = None
    required: bool = False
    description: str = ""

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if reserved_env_name(value):
            raise ValueError(
                f"parameter name {value!r} is reserved: parameters become the workload's environment, and "
                "PATH, HOME, LD_*, PYTHONPATH, GXWF_* and the like steer how it starts; choose another name"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ParameterInput:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"{self.name}: minimum {self.minimum} is above maximum {self.maximum}")
        if (self.minimum is not None or self.maximum is not None) and self.type not in ("integer", "number"):
            raise ValueError(f"{self.name}: minimum and maximum need type integer or number")
        return self


Input = Annotated[FileInput | ParameterInput, Field(discriminator="kind")]


class Output(_Strict):
    name: Name
    path: str = Field(min_length=1, max_length=1024)
    description: str = ""


class Resources(_Strict):
    cpu: float = Field(default=1.0, gt=0, le=1024)
    memory: str = "1Gi"
    gpu: int = Field(default=0, ge=0, le=64)
    gpu_type: str | None = Field(default=None, max_length=128, description="e.g. nvidia-a100; None: any")

    @field_validator("memory")
    @classmethod
    def _quantity(cls, value: str) -> str:
        memory_bytes(value)
        return value

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)


class TimeLimits(_Strict):
    pending_seconds: float = Field(default=600, gt=0)
    running_seconds: float = Field(default=3600, gt=0)


class RetryPolicy(_Strict):
    max_attempts: int = Field(default=1, ge=1, le=20)
    backoff_seconds: float = Field(default=10, ge=0)


class WorkflowAssetDefinition(_Strict):
    """One WorkflowAsset as written in deploy/assets/*.yaml."""

    id: AssetId
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    edc_asset_ids: list[EdcAssetId] = Field(
        default_factory=list, description="Asset ids in the connector's catalog that mean this workflow"
    )
    image: str | None = Field(default=None, max_length=512, description="None: a command on the local backend")
    command: list[str] = Field(min_length=1)
    bare_command: list[str] | None = Field(
        default=None,
        min_length=1,
        description="With an image: what runs instead, without a container, on sites that have no container runtime",
    )
    inputs: list[Input] = Field(default_factory=list)
    outputs: list[Output] = Field(default_factory=list)
    resources: Resources = Field(default_factory=Resources)
    data_labels: list[str] = Field(default_factory=list, description="Data locality a site must offer")
    time_limits: TimeLimits = Field(default_factory=TimeLimits)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)

    @model_validator(mode="after")
    def _unique_names(self) -> WorkflowAssetDefinition:
        for what, names in (("input", [i.name for i in self.inputs]), ("output", [o.name for o in self.outputs])):
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"{what} names must be unique: {', '.join(repeated)}")
        return self

    def digest(self) -> str:
        """Identifies the content: applying an unchanged definition again makes no new version."""
        content = self.model_dump(mode="json")
        if content.get("bare_command") is None:
            # Unset, it leaves the digest as it was before the field existed: applying an unchanged definition
            # again makes no new version.
            content.pop("bare_command", None)
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def answers_to(self, edc_asset_id: str) -> bool:
        return edc_asset_id == self.id or edc_asset_id in self.edc_asset_ids


class StoredAsset(BaseModel):
    """One immutable version; runs and deployments keep the version they started with."""

    model_config = ConfigDict(populate_by_name=True)

    asset_id: str
    version: int = Field(ge=1)
    digest: str
    definition: WorkflowAssetDefinition
    created_at: datetime = Field(default_factory=utcnow)
    # A deleted asset is offered to no new transfer; its versions stay for what already uses them.
    deleted: bool = False

    def summary(self) -> dict[str, Any]:
        r = self.definition.resources
        return {
            "id": self.asset_id,
            "version": self.version,
            "title": self.definition.title,
            "edc_asset_ids": self.definition.edc_asset_ids,
            "cpu": r.cpu,
            "memory": r.memory,
            "gpu": r.gpu,
            "deleted": self.deleted,
        }


def next_version(current: StoredAsset | None, definition: WorkflowAssetDefinition) -> StoredAsset | None:
    """What applying `definition` stores after `current` (the latest version), or None when it changes nothing:
    a new version per changed content, and a deleted asset applied again comes back as a new version."""
    digest = definition.digest()
    if current is not None and current.digest == digest and not current.deleted:
        return None
    return StoredAsset(
        asset_id=definition.id,
        version=(current.version + 1) if current else 1,
        digest=digest,
        definition=definition,
    )


def serving_edc_asset(edc_asset_id: str, latest: Iterable[StoredAsset | None]) -> StoredAsset | None:
    """Which of the candidates' latest versions serves the EDC asset `edc_asset_id`: the asset named like it
    first (the GPU carla-minimal before its CPU stand-in, which also answers to carla-minimal), then the others
    by id; deleted ones and ones that no longer answer to it do not count."""
    found = [a for a in latest if a is not None and not a.deleted and a.definition.answers_to(edc_asset_id)]
    found.sort(key=lambda a: (a.asset_id != edc_asset_id, a.asset_id))
    return found[0] if found else None
