"""Handlers through a NATS outage longer than a blip (its server restarted after 4 s): every run ends succeeded,
nothing is dead-lettered, and the outage is said once, not once per event."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import nats
from structlog.testing import capture_logs

from devstack import EmbeddedStack, StackEndpoints
from devstack.restarts import RestartPolicy
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from gxwf.stack_users import nats_users
from schemas.run import RUN_MACHINE, RunDocument


async def publish_until_accepted(service: HandlerService, request: RunRequested) -> None:
    assert service.bus is not None
    event = new_event(s.RUN_REQUESTED, request, subject=request.run_id)
    for _ in range(300):
        try:
            await service.bus.publish(event)
            return
        except Exception:  # NATS away: the same event again (its id de-duplicates)
            await asyncio.sleep(0.2)
    raise AssertionError("JetStream never accepted the run")


async def test_runs_through_a_nats_restart_all_succeed_and_none_is_dead_lettered(
    stack: StackEndpoints, settings: Settings, tmp_path: Path
) -> None:
    said: list[str] = []
    embedded = EmbeddedStack(
        tmp_path / "nats-only",
        mongo_url=stack.mongo,
        s3_endpoint=stack.s3,
        nats_users=nats_users(),
        restarts=RestartPolicy(delays=(4.0,)),
        say=said.append,
    )
    own = await embedded.start()
    waiting = asyncio.create_task(embedded.wait_until_signalled())
    settings = settings.model_copy(update={"adhoc_runs": True, "nats_url": own.nats})
    service = HandlerService(settings, Endpoints.of_stack(own, "handlers").with_s3(settings))
    try:
        await service.start()
        requests = [
            RunRequested(
                run_id=f"outage-{uuid.uuid4().hex[:8]}-{i}",
                consumer_id=f"consumer-{i % 4}",
                asset_id="outage",
                spec=RunSpec(command=["sh", "-c", "echo done"]),
            )
            for i in range(30)
        ]
        with capture_logs() as logs:
            for request in requests[:15]:
                await publish_until_accepted(service, request)
            os.kill(own.pids["nats"], signal.SIGKILL)
            for request in requests[15:]:
                await publish_until_accepted(service, request)
            for _ in range(600):
                ended = await service.store.count(RunDocument, states=sorted(RUN_MACHINE.terminal))
                if ended == len(requests):
                    break
                await asyncio.sleep(0.2)
            runs = await service.store.find(RunDocument, limit=100)
        assert sorted(run.id for run in runs) == sorted(r.run_id for r in requests)
        assert {run.state for run in runs} == {"succeeded"}
        nc = await nats.connect(own.nats)
        try:
            assert (await nc.jetstream().stream_info(s.DLQ_STREAM)).state.messages == 0
        finally:
            await nc.close()
        assert any(line.startswith("nats is back after") for line in said), said
        warnings = [entry for entry in logs if entry["log_level"] in {"warning", "error"}]
        # At most: the connection lost, and the handlers waiting for it; no retry that spent a delivery.
        assert len(warnings) <= 2, warnings
        assert not [entry for entry in logs if entry["event"] in {"handler failed, will retry", "event dead-lettered"}]
    finally:
        await service.stop()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await embedded.stop()
