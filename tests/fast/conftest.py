"""The fast tier: every handler in this process on in-memory ports (inprocess/), no server, no sleep.

Each flow test runs twice: once with every event delivered once, once with every delivery made a second time
after it was handled (a redelivery after a crash before the ack). The same expectations hold for both: nothing
may be applied twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from events import subjects as s
from events.envelope import Envelope, derived_id, new_event
from events.payloads.edc import EdcDeprovisionRequested, EdcProvisionRequested
from events.payloads.run import RetryPolicy, RunRequested, RunSpec, RunStopRequested
from inprocess.system import InProcessSystem
from schemas.assets import Resources, WorkflowAssetDefinition
from schemas.documents import StatefulDocument
from schemas.tenancy import tenant_id

CONSUMER = "did:web:consumer.example"
# What the default connector's consumer owns its runs, inputs and results under.
TENANT = tenant_id("default", CONSUMER)
CALLBACK = "http://connector.test/callback"


@pytest.fixture(params=[False, True], ids=["once", "twice"])
async def system(request: pytest.FixtureRequest, tmp_path: Path) -> InProcessSystem:
    built = InProcessSystem.build(tmp_path, deliver_twice=request.param)
    await built.assets.apply(
        WorkflowAssetDefinition(id="shell-count", title="Count lines", command=["/bin/sh", "-c", "wc -l"])
    )
    await built.assets.apply(
        WorkflowAssetDefinition(id="gpu-sim", title="Needs a GPU", command=["sim"], resources=Resources(gpu=1))
    )
    return built


async def provision(
    system: InProcessSystem, tp: str, asset: str = "shell-count", consumer: str = CONSUMER, *, negotiated: bool = True
) -> None:
    """The connector's finalized negotiation and its provision request, then everything that follows."""
    if negotiated:
        system.edc.negotiated(tp, asset, consumer)
    request = EdcProvisionRequested(
        connector="default", generation="control-plane-http", transfer_process_id=tp, callback_address=CALLBACK
    )
    await system.bus.publish(new_event(s.EDC_PROVISION_REQUESTED, request, id_=derived_id(tp, "provision")))
    await system.bus.settle()


async def deprovision(system: InProcessSystem, tp: str) -> None:
    request = EdcDeprovisionRequested(
        connector="default", generation="control-plane-http", transfer_process_id=tp, callback_address=CALLBACK
    )
    await system.bus.publish(new_event(s.EDC_DEPROVISION_REQUESTED, request, id_=derived_id(tp, "deprovision")))
    await system.bus.settle()


async def request_run(
    system: InProcessSystem,
    run_id: str,
    *,
    consumer: str = TENANT,
    tp: str | None = None,
    timeout: float = 3600,
    retry: RetryPolicy | None = None,
    settle: bool = True,
) -> None:
    spec = RunSpec(command=["work"], timeout_seconds=timeout, retry=retry or RetryPolicy())
    request = RunRequested(
        # Not the catalogue's shell-count: an ad-hoc run, so the spec above (limits, retries) is what runs.
        run_id=run_id,
        consumer_id=consumer,
        transfer_process_id=tp,
        asset_id="adhoc-work",
        spec=spec,
    )
    await system.bus.publish(new_event(s.RUN_REQUESTED, request, id_=derived_id(run_id, "requested")))
    await (system.bus.settle() if settle else system.bus.run_until_quiet())


async def stop_run(system: InProcessSystem, run_id: str, consumer: str = TENANT) -> None:
    stop = RunStopRequested(run_id=run_id, consumer_id=consumer, reason="enough")
    await system.bus.publish(new_event(s.RUN_STOP_REQUESTED, stop, id_=derived_id(run_id, "stop")))
    await system.bus.settle()


def types(system: InProcessSystem, prefix: str = ">") -> list[str]:
    """What the stream kept, by type, in order."""
    return [event.type for event in system.bus.of(prefix)]


async def states(system: InProcessSystem, kind: type[StatefulDocument], doc_id: str) -> list[str]:
    doc = await system.store.get(kind, doc_id)
    assert doc is not None, f"no {kind.__name__} {doc_id}"
    return [entry.to for entry in doc.history]


async def publish(system: InProcessSystem, subject: str, payload: Any, *, id_: str | None = None) -> Envelope[Any]:
    event = new_event(subject, payload, id_=id_)
    await system.bus.publish(event)
    await system.bus.settle()
    return event
