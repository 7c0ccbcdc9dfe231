"""A simulated connector of each EDC generation through the real ingress, bus and EDC client, and its CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from adapters.edc_client import HttpEdcClient
from adapters.mongo_call_log import MongoEdcCallLog
from adapters.mongo_store import MongoStateStore
from edc_ingress.service import IngressService
from edc_ingress.settings import EdcSettings
from edc_simulator.connector import SimulatedConnector
from edc_simulator.versions import VERSIONS, version
from events import subjects as s
from events.envelope import Envelope
from events.payloads.edc import EdcDeprovisionRequested, EdcProvisionRequested
from gxwf.cli import main
from gxwf.settings import Settings
from ports.edc import AccessAddress, ProvisionTarget
from schemas.provisioning import ProvisionDocument, ProvisionState
from tests.backbone.conftest import stream_events
from tests.edc_fixtures import KEY, RunningIngress, registry_for

if TYPE_CHECKING:
    from devstack import StackEndpoints


@pytest.fixture(params=sorted(VERSIONS))
async def connector(
    request: pytest.FixtureRequest, stack: StackEndpoints, js: JetStreamContext, settings: Settings
) -> AsyncIterator[SimulatedConnector]:
    sim = SimulatedConnector(version(request.param), ingress_url="http://127.0.0.1:9", api_key=KEY)
    await sim.start()
    service = IngressService(
        EdcSettings(_env_file=None),  # type: ignore[call-arg]
        registry_for(sim),
        nats_url=stack.nats_for("edc_ingress"),
        mongo_url=stack.mongo,
        mongo_database=settings.mongo_database,
        port=0,
    )
    sim.ingress_url = await service.start()
    yield sim
    await service.stop()
    await sim.stop()


@pytest.fixture
async def provider_side(
    connector: SimulatedConnector, js: JetStreamContext, store: MongoStateStore
) -> AsyncIterator[list[str]]:
    """Stands in for the provisioning handlers: answers each request through the EDC client, and records the
    provisioning as settled (which is how the ingress tells an untyped pre-0.11 deprovision request apart)."""
    client = HttpEdcClient(registry_for(connector), MongoEdcCallLog(store.db), backoff=[0.0])
    handled: list[str] = []

    async def answer(msg: Msg) -> None:
        event = json.loads(msg.data)
        handled.append(event["type"])
        if event["type"] == s.EDC_PROVISION_REQUESTED:
            request = Envelope[EdcProvisionRequested].model_validate(event).data
            tp = request.transfer_process_id
            if await store.create(ProvisionDocument(_id=tp, state="requested", connector="default"), event_id="p0"):
                for step, state in enumerate(("deploying", "granting", ProvisionState.GRANTED)):
                    await store.transition(ProvisionDocument, tp, state, event_id=f"p{step + 1}")
            # What the handlers learn when a data-plane request lacks them: consumer and asset, from EDC.
            transfer = await client.transfer_process("default", tp)
            assert transfer.contract_id is not None
            agreement = await client.contract_agreement("default", transfer.contract_id)
            assert agreement.consumer_id == "did:web:consumer.example" and transfer.asset_id == "carla-minimal"
            access = AccessAddress(base_url=f"http://workflow-api/{tp}", auth_code="t0ken")
            await client.provisioned(ProvisionTarget.of(request), access, resource_name=f"gxwf-{tp}")
        else:
            deprovision = Envelope[EdcDeprovisionRequested].model_validate(event).data
            await client.deprovisioned(ProvisionTarget.of(deprovision))

    # From JetStream, as handlers consume: what it stored once, however often the connector sent it.
    sub = await js.subscribe("edc.*.requested", cb=answer, ordered_consumer=True)
    yield handled
    await sub.unsubscribe()
    await client.close()


async def test_a_transfer_story_of_each_generation(
    connector: SimulatedConnector, provider_side: list[str], js: JetStreamContext
) -> None:
    report = await connector.story(
        asset_id="carla-minimal", consumer_id="did:web:consumer.example", resend=2, callback_timeout=10
    )
    assert all(200 <= sent.status < 300 for sent in report.sent), report.sent
    assert report.provisioned is not None and report.deprovisioned is not None
    expected = "data-plane" if connector.version.provisioner == "data-plane" else "control-plane"
    assert report.provisioned.provisioner == expected

    # Sent three times while waiting, provisioned once; deprovisioned once.
    assert provider_side == [s.EDC_PROVISION_REQUESTED, s.EDC_DEPROVISION_REQUESTED]
    events = await stream_events(js, "edc.>")
    typed = [e["type"] for e in events if e["type"] != s.EDC_CALLBACK_RECEIVED]
    assert typed == [
        s.EDC_NEGOTIATION_FINALIZED,
        s.EDC_PROVISION_REQUESTED,
        s.EDC_TRANSFER_STARTED,
        s.EDC_TRANSFER_COMPLETED,
        s.EDC_DEPROVISION_REQUESTED,
    ]
    raw = [e["data"]["edc_type"] for e in events if e["type"] == s.EDC_CALLBACK_RECEIVED]
    assert raw == [
        "ContractNegotiationFinalized",
        "TransferProcessInitiated",
        "TransferProcessProvisioningRequested",
        "TransferProcessProvisioned",
        "TransferProcessStarted",
        "TransferProcessCompleted",
    ]
    assert all(e["data"]["transfer_process_id"] == report.transfer.id for e in events if "requested" in e["type"])


# -- the command -------------------------------------------------------------------------------------------


async def test_simulate_command_prints_the_story(ingress: RunningIngress, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "200"}
    args = ["edc", "simulate", "--version", "0.18", "--provisioning", "--ingress", ingress.url, "--api-key", KEY]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gxwf",
        *args,
        "--callback-timeout",
        "0.3",
        "--state-dir",
        str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    # Nothing provisions here (no handlers): the story is told, and the exit status says it did not succeed.
    assert proc.returncode == 1, text + err.decode()
    assert "EDC 0.18 simulator: management API http://127.0.0.1:" in text
    assert "provision request" in text and "edc.provision.requested" in text
    assert "within 0.3s (no store known to say why)" in text, text


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., str]]:
    for name in [n for n in os.environ if n.startswith("GXWF_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["edc", "simulate", *args])
        stderr = capsys.readouterr().err
        assert done.value.code == 2 and stderr.count("\n") == 1, stderr
        return stderr

    yield run
    # `gxwf` pointed structlog at the captured stderr, which pytest closes after the test.
    structlog.reset_defaults()


def test_simulate_bad_input(cli: Callable[..., str]) -> None:
    unknown = "--version 0.7: unknown EDC version '0.7': choose from 0.5, 0.10, 0.15, 0.18, main"
    assert unknown in cli("--version", "0.7")
    # Nothing runs: the message names the state directory it looked in, and how to point at another.
    nothing = cli()
    assert "no ingress known in " in nothing and ".gxwf/endpoints.json" in nothing and "--state-dir" in nothing
    no_key = cli("--ingress", "http://127.0.0.1:9")
    assert "no API key" in no_key and ".gxwf/edc-api-key" in no_key and "--state-dir" in no_key
    assert "--keep-access and --terminate" in cli("--keep-access", "--terminate")
    assert "--transfers" in cli("--transfers", "0")
    assert "only EDC 0.18 has both ways" in cli("--version", "main", "--provisioning")
    assert "only with Data Plane Signaling" in cli("--version", "0.15", "--conflict-first-callback")
