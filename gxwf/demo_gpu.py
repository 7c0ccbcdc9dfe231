"""The step `gxwf up --demo --slurm` adds: the consumer's run of a GPU asset, which placement puts on the Slurm
site, the only one with GPUs; the demo says where it ran and fails when it ran anywhere else."""

from __future__ import annotations

from rich.console import Console

from edc_simulator.connector import SimulatedConnector
from gxwf.definitions import load_assets
from gxwf.demo import show_provisioning
from gxwf.demo_consumer import consumer_access, run_as_consumer
from gxwf.demo_system import DemoSystem
from gxwf.shipped_assets import SHIPPED
from gxwf.simulate import edc_demo
from schemas.assets import WorkflowAssetDefinition
from schemas.provisioning import DeploymentDocument, ProvisionState
from schemas.run import RunDocument, RunState

GPU_STEP = "a GPU run placed on the HPC site"
GPU_ASSET_FILE = SHIPPED / "gpu" / "carla-standin-gpu.yaml"


class GpuStepFailed(Exception):
    """What went wrong in the GPU step, for DemoFailed."""


def gpu_demo_asset() -> WorkflowAssetDefinition:
    return load_assets(GPU_ASSET_FILE)[0]


async def play_gpu_step(console: Console, system: DemoSystem, simulated: SimulatedConnector, site: str) -> None:
    """A second transfer, of the GPU asset; its deployment and run must be on `site`. Raises GpuStepFailed."""
    asset = gpu_demo_asset()
    await system.assets.apply(asset)
    before = set(simulated.ledger.transfers)
    await edc_demo(
        console,
        system.ingress_url,
        system.connector.api_key.get_secret_value(),
        system.connector.api_key_header,
        connector=simulated,
        asset=asset.edc_asset_ids[0],
    )
    started = [transfer for transfer in simulated.ledger.transfers if transfer not in before]
    if not started:
        raise GpuStepFailed(f"the connector started no transfer of {asset.id}")
    transfer_id = started[0]
    provision = await show_provisioning(console, system.store, transfer_id)
    if provision is None or provision.state != ProvisionState.GRANTED:
        state = provision.state if provision is not None else "not recorded"
        reason = f": {provision.reason}" if provision is not None and provision.reason else ""
        raise GpuStepFailed(f"transfer {transfer_id} of {asset.id} is {state}{reason}")
    deployment = (
        await system.store.get(DeploymentDocument, provision.deployment_id) if provision.deployment_id else None
    )
    placed = deployment.site if deployment is not None else None
    console.print(f"placement: {asset.id} (gpu: {asset.resources.gpu}) -> site {placed}")
    if placed != site:
        raise GpuStepFailed(f"the consumer's deployment for {asset.id} was placed on {placed}, not on {site}")
    access = consumer_access(simulated, transfer_id)
    if access is None:
        raise GpuStepFailed(f"the connector was not called back with the consumer's access to {transfer_id}")
    outcome = await run_as_consumer(console, *access, system.state_dir, asset.id, system.dashboard_url)
    if outcome.status is None:
        raise GpuStepFailed(f"the consumer could not use the WorkflowApi: {outcome.error}")
    status = outcome.status
    run = await system.store.get(RunDocument, status.id)
    where = f"site {run.site} ({run.backend})" if run is not None else "an unrecorded site"
    console.print(f"run {status.id} of {asset.id} ran on {where}: {status.state}")
    if run is None or run.site != site:
        raise GpuStepFailed(f"run {status.id} ran on {where}, not on {site}")
    if status.state != RunState.SUCCEEDED:
        raise GpuStepFailed(f"run {status.id} ended {status.state}" + (f": {status.reason}" if status.reason else ""))
    if not outcome.downloaded:
        raise GpuStepFailed(f"run {status.id} succeeded but no result could be downloaded")
