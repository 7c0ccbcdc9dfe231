"""What a chaos run asks of the system, as its users would: a connector's transfers provisioned and, later,
deprovisioned through the ingress, and consumers' runs through the WorkflowApi with the access they were granted.

Each request is retried until answered, as a connector and a client do (a server may be down for a while); a
retried run submission carries its idempotency key, so it is one run however often it was sent."""

from __future__ import annotations

import asyncio
import random
import shlex
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from gxwf_client.client import ApiError, WorkflowClient
from gxwf_client.models import RunAccepted

from edc_simulator import shapes
from edc_simulator.connector import SimulatedConnector
from edc_simulator.ledger import Callback, Transfer
from gxwf.definitions import load_assets
from gxwf.demo_consumer import consumer_access
from ports.assets import AssetCatalogue

ASSET_ID = "chaos-marker"
ASSET_FILE = "chaos-asset.yaml"
T = TypeVar("T")
# How long a connector waits for a provision or deprovision callback before it sends its request again.
# Longer than any recovery a fault needs, so a callback that comes late is not answered twice to two requests.
RESEND_SECONDS = 45.0


def marker_asset_yaml(markers: Path) -> str:
    """The asset every chaos run runs: one line with its run id appended to markers/<run id>, so a run executed
    twice shows as two lines."""
    script = f'echo "$GXWF_RUN_ID" >> {shlex.quote(str(markers))}/"$GXWF_RUN_ID"'
    return (
        "# Written by `gxwf chaos`: each run appends its id to its marker file, once per execution.\n"
        f"id: {ASSET_ID}\n"
        "title: Chaos marker\n"
        "description: Appends one line with the run id to the chaos run's marker file of the run.\n"
        f"edc_asset_ids: [{ASSET_ID}]\n"
        f"command: [/bin/sh, -c, {_yaml_string(script)}]\n"
        "resources: {cpu: 0.1, memory: 64Mi}\n"
        "time_limits: {pending_seconds: 3600, running_seconds: 300}\n"
    )


def _write_asset(path: Path, markers: Path) -> None:
    markers.mkdir(parents=True, exist_ok=True)
    path.write_text(marker_asset_yaml(markers))


def _yaml_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def register_asset(catalogue: AssetCatalogue, state_dir: Path, markers: Path) -> None:
    """As shipped assets are: a definition file, loaded and applied to the catalogue."""
    path = state_dir / ASSET_FILE
    await asyncio.to_thread(_write_asset, path, markers)
    for definition in load_assets(path):
        await catalogue.apply(definition)


async def until_answered(send: Callable[[], Awaitable[T]], deadline: float, what: str) -> T:
    """`send` until it neither raises a transport error nor is answered 5xx or 429 (a server down, the bus
    refusing), backing off up to 2 s; TimeoutError at `deadline`."""
    pause = 0.2
    while True:
        try:
            return await send()
        except (httpx.TransportError, Retry, ApiError) as error:
            if isinstance(error, ApiError) and error.status < 500 and error.status != 429:
                raise
            if time.monotonic() + pause > deadline:
                raise TimeoutError(f"{what}: no answer before the deadline ({error})") from None
        await asyncio.sleep(pause)
        pause = min(2.0, pause * 2)


class Retry(Exception):
    """An answer a client retries (5xx, 429)."""


def _accepted(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 500 or response.status_code == 429:
        raise Retry(f"{response.status_code}: {response.text[:200]}")
    return response


@dataclass
class Consumer:
    """One transfer's consumer: the access the connector was sent, the runs it had accepted."""

    transfer: Transfer
    url: str = ""
    token: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # run id -> idempotency key
    refused: list[str] = field(default_factory=list)


class Workload:
    def __init__(self, connector: SimulatedConnector, seed: int, deadline: float) -> None:
        self.connector = connector
        self.seed = seed
        self.deadline = deadline
        self.transfers: list[Transfer] = []
        # Provisioner requests sent, by (transfer, action): a callback per request is what a connector may expect.
        self.requests: Counter[tuple[str, str]] = Counter()
        self.consumers: list[Consumer] = []
        self.failed: list[str] = []  # what the workload could not even ask for, with the reason
        self.provisioned_at: float | None = None
        self.submitted_at: float | None = None

    # -- transfers ------------------------------------------------------------------------------------------

    async def provision(self, count: int, concurrency: int = 8) -> None:
        """`count` transfers of the marker asset, each to a consumer of its own, until the connector is called back."""
        self.transfers = [
            self.connector.ledger.new_transfer(ASSET_ID, f"did:web:chaos-consumer-{i}.example") for i in range(count)
        ]
        gate = asyncio.Semaphore(concurrency)

        async def one(transfer: Transfer) -> None:
            async with gate:
                await self._provision(transfer)

        await asyncio.gather(*(one(t) for t in self.transfers))
        self.provisioned_at = time.monotonic()

    async def _provision(self, transfer: Transfer) -> None:
        version = self.connector.version
        events = [
            shapes.negotiation_event(version, transfer.agreement),
            shapes.transfer_event(version, transfer, "TransferProcessInitiated"),
            shapes.transfer_event(version, transfer, "TransferProcessProvisioningRequested"),
        ]
        for body in events:
            await self._event(body, f"transfer {transfer.id} event")
        answer = await self._request_until_called_back(transfer, "provision", ("provision", "deprovision"))
        if answer is None or answer.action == "deprovision":
            self.failed.append(f"transfer {transfer.id}: not provisioned" + (" (refused)" if answer else ""))
            return
        for kind in ("TransferProcessProvisioned", "TransferProcessStarted"):
            await self._event(shapes.transfer_event(version, transfer, kind), kind)

    async def _event(self, body: dict[str, Any], what: str) -> None:
        async def send() -> httpx.Response:
            return _accepted(await self.connector.send_event(body))

        await until_answered(send, self.deadline, what)

    async def _request_until_called_back(
        self, transfer: Transfer, action: str, answers: tuple[str, ...]
    ) -> Callback | None:
        """The provisioner request, sent again every RESEND_SECONDS until a callback answers it (as EDC does)."""
        sim = self.connector

        async def send() -> httpx.Response:
            return _accepted(await sim.send_provisioner_request(transfer, action))

        while time.monotonic() < self.deadline:
            await until_answered(send, self.deadline, f"transfer {transfer.id} {action} request")
            self.requests[(transfer.id, action)] += 1
            wait = min(RESEND_SECONDS, max(0.0, self.deadline - time.monotonic()))
            answer = await sim.ledger.wait_for(transfer.id, answers, wait)
            if answer is not None:
                return answer
        return None

    async def deprovision(self, transfers: list[Transfer], concurrency: int = 8) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(transfer: Transfer) -> None:
            async with gate:
                await self._deprovision(transfer)

        await asyncio.gather(*(one(t) for t in transfers))

    async def _deprovision(self, transfer: Transfer) -> None:
        version = self.connector.version
        if transfer.state != "STARTED" and transfer.state != "PROVISIONED":
            return
        transfer.state = "COMPLETED"
        await self._event(shapes.transfer_event(version, transfer, "TransferProcessCompleted"), "completed")
        transfer.state = "DEPROVISIONING"
        answer = await self._request_until_called_back(transfer, "deprovision", ("deprovision",))
        if answer is None:
            self.failed.append(f"transfer {transfer.id}: no deprovision callback")

    # -- runs -----------------------------------------------------------------------------------------------

    def pick_consumers(self, count: int) -> list[Consumer]:
        """The consumers of the first `count` provisioned transfers, with the access their connector received."""
        for transfer in self.transfers:
            if len(self.consumers) >= count:
                break
            access = consumer_access(self.connector, transfer.id)
            if access is not None:
                self.consumers.append(Consumer(transfer, *access))
        return self.consumers

    async def submit(self, runs: int) -> None:
        """`runs` runs spread over the consumers, each consumer submitting its own one after the other."""
        if not self.consumers:
            self.failed.append(f"{runs} runs not submitted: no consumer was granted access")
            return
        n = len(self.consumers)
        share = [runs // n + (1 if i < runs % n else 0) for i in range(n)]
        await asyncio.gather(*(self._submit(c, share[i], i) for i, c in enumerate(self.consumers)))
        self.submitted_at = time.monotonic()

    async def _submit(self, consumer: Consumer, count: int, index: int) -> None:
        pace = random.Random(f"{self.seed}-{index}")  # noqa: S311 - pacing, no secret
        async with WorkflowClient(consumer.url, consumer.token) as client:
            for k in range(count):
                key = f"chaos-{self.seed}-{index}-{k}"

                async def start(key: str = key) -> RunAccepted:
                    return await client.start_run(ASSET_ID, idempotency_key=key)

                try:
                    accepted = await until_answered(start, self.deadline, f"run {key}")
                except (ApiError, TimeoutError) as error:
                    consumer.refused.append(f"{key}: {error}")
                    continue
                consumer.runs[accepted.run_id] = key
                # Spread out a little, as real clients are, so the faults meet runs at every stage.
                await asyncio.sleep(pace.uniform(0.0, 0.1))

    def accepted(self) -> dict[str, Consumer]:
        return {run_id: c for c in self.consumers for run_id in c.runs}
