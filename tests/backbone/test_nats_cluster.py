"""Handlers on a 3-node NATS cluster: the node they are connected to is killed, and they carry on through
another, running each run once."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from adapters.mongo_store import MongoStateStore
from devstack import EmbeddedStack, StackEndpoints
from events import subjects as s
from events.envelope import new_event
from events.payloads.run import RunRequested, RunSpec
from events.permissions import connect_options
from events.servers import nats_servers
from gxwf.runtime import Endpoints, HandlerService
from gxwf.settings import Settings
from gxwf.stack_users import nats_users
from schemas.run import RunDocument, RunState
from tests.backbone.conftest import eventually
from tests.devstack.helpers import connect, publish_until_acked


@pytest.fixture
async def cluster(stack: StackEndpoints) -> AsyncIterator[StackEndpoints]:
    embedded = EmbeddedStack(None, nats_nodes=3, mongo_url=stack.mongo, s3_endpoint=stack.s3, nats_users=nats_users())
    async with embedded as endpoints:
        yield endpoints


def connected_node(service: HandlerService, cluster: StackEndpoints) -> int:
    """The 0-based node the handlers' bus is connected to."""
    assert service.bus is not None
    connection = service.bus.broker.config.connection_state.connection
    assert connection is not None and connection.connected_url is not None
    ports = [int(url.rsplit(":", 1)[1]) for url in nats_servers(cluster.nats)]
    return ports.index(connection.connected_url.port or 0)


async def test_handlers_keep_handling_after_their_node_is_killed(
    cluster: StackEndpoints, settings: Settings, store: MongoStateStore, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"nats_url": cluster.nats_for("handlers")})
    service = HandlerService(settings, Endpoints.of_stack(cluster, "handlers").with_s3(settings), groups={"jobs"})
    await service.start()
    marker = tmp_path / "executions"
    try:
        # The streams the handlers made are on every node.
        nc = await nats.connect(**connect_options(cluster.nats))
        info = await nc.jetstream().stream_info(s.STREAM)
        await nc.close()
        assert info.config.num_replicas == 3

        doomed = connected_node(service, cluster)
        os.kill(cluster.pids[f"nats-{doomed + 1}"], signal.SIGKILL)
        publisher = await connect(cluster.nats, (doomed + 1) % 3)
        try:
            request = new_event(
                s.RUN_REQUESTED,
                RunRequested(
                    run_id="cluster-1",
                    consumer_id="c-1",
                    asset_id="shell",
                    spec=RunSpec(command=["/bin/sh", "-c", f"echo once >> {marker}"]),
                ),
            )
            data = request.model_dump_json().encode()
            await publish_until_acked(publisher.jetstream(), s.RUN_REQUESTED, data, request.id)
        finally:
            await publisher.close()

        async def succeeded() -> RunDocument | None:
            doc = await store.get(RunDocument, "cluster-1")
            return doc if doc is not None and doc.state == RunState.SUCCEEDED else None

        await eventually(succeeded, timeout=90)
        assert connected_node(service, cluster) != doomed
        assert (await service.readiness())["nats"] == "ok"
    finally:
        await service.stop()
    assert marker.read_text() == "once\n"
