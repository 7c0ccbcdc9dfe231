"""`gxwf up --demo` step by step: each step checks what a person would look for, and the first that fails
stops the demo with its name and cause, so a broken demo never reads like a successful one."""

from __future__ import annotations

import asyncio
import shlex

from rich.console import Console

from edc_simulator.connector import SimulatedConnector
from gxwf.demo import DEMO_ASSET, run_demo, show_provisioning
from gxwf.demo_consumer import EDC_ASSET, carla_demo_asset, consumer_access, run_as_consumer, write_profile
from gxwf.demo_system import DemoSystem
from gxwf.program import program
from gxwf.simulate import edc_demo
from ports.store import StateStore
from schemas.provisioning import ProvisionDocument, ProvisionState
from schemas.run import RunState

STEPS = (
    "a run through the backbone",
    "a provider connector's transfer",
    "the consumer's access",
    "the consumer's run and its results",
)


class DemoFailed(Exception):
    def __init__(self, step: int, detail: str, steps: tuple[str, ...] = STEPS) -> None:
        super().__init__(f"step {step} of {len(steps)} ({steps[step - 1]}): {detail}")
        self.step = step
        self.detail = detail


async def play_demo(
    console: Console, system: DemoSystem, simulated: SimulatedConnector, *, gpu_site: str | None = None
) -> None:
    """Every step in turn; raises DemoFailed at the first that did not do what it shows. With `gpu_site` (the
    Slurm site of `gxwf up --slurm`), a last step runs a GPU asset, which placement must put on that site."""
    from gxwf.demo_gpu import GPU_STEP, GpuStepFailed, play_gpu_step

    steps = (*STEPS, GPU_STEP) if gpu_site else STEPS

    def failed(step: int, detail: str) -> DemoFailed:
        return DemoFailed(step, detail, steps)

    run = await run_demo(console, system.nats_url, system.bus, system.store, system.assets, system.site)
    if run is None:
        raise failed(1, "the run was not recorded (see the handler log above)")
    if run.state != RunState.SUCCEEDED:
        raise failed(1, f"run {run.id} ended {run.state}" + (f": {run.reason}" if run.reason else ""))

    await system.assets.apply(DEMO_ASSET)
    carla = carla_demo_asset()
    await system.assets.apply(carla)
    accepted = await edc_demo(
        console,
        system.ingress_url,
        system.connector.api_key.get_secret_value(),
        system.connector.api_key_header,
        connector=simulated,
        asset=EDC_ASSET,
    )
    transfers = list(simulated.ledger.transfers)
    if not transfers:
        raise failed(2, "the connector started no transfer")
    # A provisioning that failed is the cause to report, even though the connector saw it as a refusal too.
    for transfer_id in transfers:
        if consumer_access(simulated, transfer_id) is not None:
            await _granted_after_callback(system.store, transfer_id)
        provision = await show_provisioning(console, system.store, transfer_id)
        if provision is None:
            raise failed(2 if not accepted else 3, f"no provisioning was recorded for transfer {transfer_id}")
        if provision.state != ProvisionState.GRANTED:
            why = provision.reason or next((h.reason for h in reversed(provision.history) if h.reason), None)
            raise failed(3, f"transfer {transfer_id} is {provision.state}" + (f": {why}" if why else ""))
    if not accepted:
        raise failed(2, "the ingress refused a message of the connector (see the table above)")
    for transfer_id in transfers:
        access = consumer_access(simulated, transfer_id)
        if access is None:
            raise failed(3, f"the connector was not called back with the consumer's access to {transfer_id}")
        profile = write_profile(system.state_dir, *access)
        console.print(f"the demo consumer's client profile (url, token): {profile}")
        outcome = await run_as_consumer(console, *access, system.state_dir, carla.id, system.dashboard_url)
        if outcome.status is None:
            raise failed(4, f"the consumer could not use the WorkflowApi: {outcome.error}")
        status = outcome.status
        if status.state != RunState.SUCCEEDED:
            raise failed(4, f"run {status.id} ended {status.state}" + (f": {status.reason}" if status.reason else ""))
        if not outcome.downloaded:
            raise failed(4, f"run {status.id} succeeded but no result could be downloaded")
        console.print(f"the transfer's timeline: {system.dashboard_url}/transfers/{transfer_id}")
        command = f"{program()} client --profile {shlex.quote(str(profile))} run list"
        console.print(f"go on as that consumer: {command}", markup=False, soft_wrap=True)
    if gpu_site:
        try:
            await play_gpu_step(console, system, simulated, gpu_site)
        except GpuStepFailed as error:
            raise failed(len(steps), str(error)) from None
    console.print(f"[green]demo: all {len(steps)} steps succeeded")


async def _granted_after_callback(store: StateStore, transfer_id: str, timeout: float = 10.0) -> None:
    """The grant handler calls the connector back before it records the grant: once the connector holds the
    access, wait (briefly) for the store to leave `granting`, so the demo does not read the moment in between."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        doc = await store.get(ProvisionDocument, transfer_id)
        if doc is None or doc.state != ProvisionState.GRANTING:
            return
        await asyncio.sleep(0.05)
