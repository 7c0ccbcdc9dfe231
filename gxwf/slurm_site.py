"""`gxwf up --slurm`: the local Slurm cluster as the compute site `hpc`, beside the sites in effect, with its own
jobs and results handlers (each site dispatches its own runs)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gxwf.definitions import load_sites
from gxwf.errors import UserError
from gxwf.settings import Settings
from schemas.sites import SitesConfig

if TYPE_CHECKING:
    from devstack.slurm import SlurmCluster
    from gxwf.endpoints import Endpoints

HPC_SITE = "hpc"
SITES_FILE = "sites-in-effect.json"


def hpc_site(cluster: SlurmCluster) -> dict[str, Any]:
    """The site entry for the cluster, as an HPC centre would write it into its sites file."""
    # Batch scripts start `python3` and `gxwf` (the stage steps): this installation's first, as for local runs.
    job_path = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
    return {
        "name": HPC_SITE,
        "description": f"a local Slurm cluster ({cluster.directory})",
        "backend": "slurm",
        "slurm": {
            "url": cluster.rest_url,
            "api_version": cluster.api_version,
            "user": cluster.user,
            # Kept current by `gxwf up` (keep_token_fresh), as a centre's cron job running `scontrol token` would.
            "token_file": str(cluster.token_file),
            "partition": cluster.partition,
            "job_root": str(cluster.jobs_dir),
            "container_runtime": "none",
            "job_path": job_path,
        },
        "capabilities": {"cpu": cluster.cpus, "memory": f"{cluster.memory_mb}Mi", "gpu": cluster.gpus},
    }


def sites_with_hpc(settings: Settings, cluster: SlurmCluster) -> Path:
    """The sites in effect (the sites file, or this machine) plus `hpc`, written to STATE_DIR/sites-in-effect.json
    for every component of `gxwf up` to read."""
    current = load_sites(settings.sites_file)
    if any(site.name == HPC_SITE for site in current.sites):
        where = settings.sites_file or "the sites in effect"
        raise UserError(f"--slurm adds the site {HPC_SITE!r}, and {where} already has one of that name")
    sites = [site.model_dump(mode="json", exclude_none=True) for site in current.sites] + [hpc_site(cluster)]
    SitesConfig.model_validate({"sites": sites})
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    path = settings.state_dir.absolute() / SITES_FILE
    path.write_text(json.dumps({"sites": sites}, indent=2) + "\n")
    return path


def hpc_settings(settings: Settings) -> Settings:
    """The settings of the handlers that run the `hpc` site's jobs and publish their results."""
    return settings.model_copy(update={"compute_backend": "slurm", "compute_site": HPC_SITE})


@dataclass(frozen=True)
class HpcSite:
    """The started cluster and the sites file that names it."""

    cluster: SlurmCluster
    sites_file: Path
    note: str | None
    site: str = HPC_SITE

    def summary(self) -> str:
        c = self.cluster
        where = f"; {self.note}" if self.note else ""
        return (
            f"{c.rest_url} ({c.api_version}, user {c.user}, token in {c.token_file}), SLURM_CONF={c.slurm_conf}, "
            f"{c.cpus} CPUs, {c.gpus} GPUs{where}"
        )

    def endpoints(self) -> dict[str, str]:
        """What endpoints.json records of the cluster, for scripts and the commands run later."""
        c = self.cluster
        return {
            "site": self.site,
            "rest_url": c.rest_url,
            "api_version": c.api_version,
            "user": c.user,
            "token_file": str(c.token_file),
            "slurm_conf": str(c.slurm_conf),
            "directory": str(c.directory),
        }

    async def start_handlers(
        self, services: contextlib.AsyncExitStack, settings: Settings, endpoints: Endpoints
    ) -> None:
        """The site's own jobs and results handlers, beside those of the other sites."""
        from gxwf.runtime import HandlerService

        service = HandlerService(hpc_settings(settings), endpoints, groups=["jobs", "results"])
        services.push_async_callback(service.stop)
        await service.start()


async def start_hpc_site(services: contextlib.AsyncExitStack, settings: Settings) -> HpcSite:
    """The cluster started in STATE_DIR/slurm (stopped, its jobs cancelled, when `services` closes) and the sites
    in effect with `hpc` added."""
    from gxwf.slurm_local import keep_token_fresh, start_local_slurm

    # Started in this (the event loop's) thread, which also stops it; it takes about a second.
    cluster, note = start_local_slurm(settings.state_dir)
    services.callback(cluster.stop)
    renewing = asyncio.create_task(keep_token_fresh(cluster))
    services.callback(renewing.cancel)
    return HpcSite(cluster, sites_with_hpc(settings, cluster), note)
