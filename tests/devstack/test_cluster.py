"""`nats_nodes=3`: three NATS servers as one JetStream cluster on loopback, which a client given every node's URL
keeps using when the node it talks to is killed."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.js.api import StreamConfig
from nats.js.errors import ServiceUnavailableError

from devstack import EmbeddedStack, StackEndpoints, StackError
from events.permissions import connect_options
from events.servers import nats_servers
from events.streams import replicas_for
from events.subjects import DLQ_STREAM, LOG_STREAM, STREAM
from gxwf.runtime import prepare_streams
from gxwf.settings import Settings
from gxwf.stack_users import nats_users
from tests.devstack.helpers import child_pids, connect, node_of, publish_until_acked


@pytest.fixture
async def cluster(stack: StackEndpoints) -> AsyncIterator[StackEndpoints]:
    """A cluster of its own per test (a test kills nodes); MongoDB-wire and S3 are the session's."""
    embedded = EmbeddedStack(None, nats_nodes=3, mongo_url=stack.mongo, s3_endpoint=stack.s3, nats_users=nats_users())
    async with embedded as endpoints:
        yield endpoints


def jsz(monitor: str) -> dict[str, Any]:
    response = httpx.get(f"{monitor}/jsz", timeout=5, trust_env=False)
    response.raise_for_status()
    meta: dict[str, Any] = response.json()["meta_cluster"]
    return meta


def varz(monitor: str) -> dict[str, Any]:
    response = httpx.get(f"{monitor}/varz", timeout=5, trust_env=False)
    response.raise_for_status()
    found: dict[str, Any] = response.json()
    return found


async def test_every_node_is_in_one_cluster_on_loopback(cluster: StackEndpoints) -> None:
    urls = nats_servers(cluster.nats)
    assert len(urls) == 3 and len(cluster.nats_monitors) == 3
    assert sorted(cluster.pids) == ["nats-1", "nats-2", "nats-3"]
    for monitor in cluster.nats_monitors:
        meta = jsz(monitor)
        assert meta["name"] == "gxwf" and meta["cluster_size"] == 3 and meta["leader"]
        info = varz(monitor)
        assert info["host"] == "127.0.0.1" and info["cluster"]["addr"] == "127.0.0.1"
    assert sorted(varz(monitor)["server_name"] for monitor in cluster.nats_monitors) == ["nats-1", "nats-2", "nats-3"]
    # Every component's user reaches every node.
    assert all(len(nats_servers(url)) == 3 for url in cluster.nats_users.values())


async def test_a_route_without_the_cluster_credentials_is_refused(cluster: StackEndpoints) -> None:
    """Routes are a way in too: a server (or anyone) joining without the route password is refused."""
    port = varz(cluster.nats_monitors[0])["cluster"]["cluster_port"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        info = await reader.readline()
        assert b'"auth_required":true' in info
        writer.write(b'CONNECT {"verbose":false,"user":"route","pass":"guess"}\r\nPING\r\n')
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    assert answer.startswith(b"-ERR 'Authorization Violation'")


async def test_streams_get_three_replicas_also_when_they_had_fewer(cluster: StackEndpoints, tmp_path: Path) -> None:
    """Streams made with one copy (GXWF_STREAM_REPLICAS=1) are scaled to three at the next start, their events kept."""
    assert replicas_for(cluster.nats) == 3
    await prepare_streams(cluster.nats, Settings(nats_url=cluster.nats, state_dir=tmp_path, stream_replicas=1))
    nc = await nats.connect(**connect_options(cluster.nats))
    try:
        assert (await nc.jetstream().stream_info(STREAM)).config.num_replicas == 1
        await publish_until_acked(nc.jetstream(), "wf.test.kept", b"kept", "kept")
        await prepare_streams(cluster.nats, Settings(nats_url=cluster.nats, state_dir=tmp_path))
        for name in (STREAM, DLQ_STREAM, LOG_STREAM):
            info = await nc.jetstream().stream_info(name)
            assert info.config.num_replicas == 3
            assert info.cluster is not None and info.cluster.leader
            assert len(info.cluster.replicas or []) == 2
        assert (await nc.jetstream().stream_info(STREAM)).state.messages == 1
    finally:
        await nc.close()


async def test_publish_and_consume_survive_a_killed_node(cluster: StackEndpoints) -> None:
    """The node that leads the stream and that the publisher talks to is killed: the publisher fails over to
    another node, the stream elects a leader among the two left, and a durable consumer on another node gets
    the event, once."""
    admin = await nats.connect(**connect_options(cluster.nats))
    stream = f"T{uuid.uuid4().hex[:8]}"
    await admin.jetstream().add_stream(StreamConfig(name=stream, subjects=[f"{stream}.>"], num_replicas=3))
    leader = (await admin.jetstream().stream_info(stream)).cluster.leader  # type: ignore[union-attr]
    await admin.close()
    doomed = int(str(leader).rsplit("-", 1)[1]) - 1
    survivor = (doomed + 1) % 3
    publisher = await connect(cluster.nats, doomed)
    consumer = await connect(cluster.nats, survivor)
    try:
        assert node_of(publisher, cluster) == doomed and node_of(consumer, cluster) == survivor
        pull = await consumer.jetstream().pull_subscribe(f"{stream}.>", durable="reader", stream=stream)
        await publish_until_acked(publisher.jetstream(), f"{stream}.before", b"before", "before")
        os.kill(cluster.pids[f"nats-{doomed + 1}"], signal.SIGKILL)
        await publish_until_acked(publisher.jetstream(), f"{stream}.after", b"after", "after")
        assert node_of(publisher, cluster) != doomed
        received: list[bytes] = []
        deadline = asyncio.get_running_loop().time() + 60
        while len(received) < 2 and asyncio.get_running_loop().time() < deadline:
            try:
                for msg in await pull.fetch(2 - len(received), timeout=2):
                    received.append(msg.data)
                    await msg.ack()
            except (TimeoutError, nats.errors.TimeoutError):
                pass
            except ServiceUnavailableError:
                # The consumer's own leader was on the killed node: asked again once one is elected.
                await asyncio.sleep(0.2)
        assert received == [b"before", b"after"]
        assert node_of(consumer, cluster) == survivor
    finally:
        await publisher.close()
        await consumer.close()


async def test_same_node_count_reuses_the_data_another_count_is_refused(stack: StackEndpoints, tmp_path: Path) -> None:
    state = tmp_path / "state"

    def embedded(nodes: int) -> EmbeddedStack:
        return EmbeddedStack(state, nats_nodes=nodes, mongo_url=stack.mongo, s3_endpoint=stack.s3)

    async with embedded(3) as first:
        nc = await nats.connect(**connect_options(first.nats))
        await nc.jetstream().add_stream(StreamConfig(name="KEPT", subjects=["kept.>"], num_replicas=3))
        await publish_until_acked(nc.jetstream(), "kept.one", b"one", "one")
        await nc.close()
    assert sorted(path.name for path in state.glob("nats*")) == ["nats-1", "nats-2", "nats-3"]
    async with embedded(3) as second:
        nc = await nats.connect(**connect_options(second.nats))
        try:
            info = await nc.jetstream().stream_info("KEPT")
        finally:
            await nc.close()
        assert info.state.messages == 1 and info.config.num_replicas == 3
    before = child_pids()
    for nodes in (1, 5):
        with pytest.raises(StackError) as error:
            await embedded(nodes).start()
        message = str(error.value)
        assert "\n" not in message
        assert f"holds the JetStream data of 3 NATS nodes ({state}/nats-1..3), not {nodes}" in message
        assert "--nats-nodes 3" in message
    assert child_pids() <= before


async def test_a_single_node_state_dir_is_not_turned_into_a_cluster(stack: StackEndpoints, tmp_path: Path) -> None:
    state = tmp_path / "state"
    async with EmbeddedStack(state, mongo_url=stack.mongo, s3_endpoint=stack.s3) as single:
        assert single.nats_monitors == [single.nats_monitor] and sorted(single.pids) == ["nats"]
    assert (state / "nats" / "jetstream").is_dir()
    with pytest.raises(StackError, match=r"holds the JetStream data of 1 NATS node \(.*/nats\), not 3"):
        await EmbeddedStack(state, nats_nodes=3, mongo_url=stack.mongo, s3_endpoint=stack.s3).start()


@pytest.mark.parametrize("nodes", [0, 8])
def test_a_bad_node_count_is_refused(nodes: int) -> None:
    with pytest.raises(StackError, match=rf"^invalid NATS node count {nodes}: 1 to 7$"):
        EmbeddedStack(None, nats_nodes=nodes)
