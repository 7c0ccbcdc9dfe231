"""The JetStream streams: all events in WF (with a de-duplication window), dead letters in WF_DLQ, live run logs in
WF_LOGS."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.servers import nats_servers
from events.subjects import (
    DLQ_PREFIX,
    DLQ_STREAM,
    LOG_CHUNK_BYTES,
    LOG_PREFIX,
    LOG_STREAM,
    STREAM,
    STREAM_SUBJECTS,
)


@dataclass(frozen=True)
class StreamSettings:
    duplicate_window_seconds: float = 600.0
    max_age_days: float = 30.0
    # The WF stream's size on the server's disk. When full, new publishes are refused (DiscardPolicy.NEW) and
    # their publishers answer "retry later"; nothing already acknowledged is dropped to make room.
    max_bytes: int = 8 * 2**30
    dlq_max_age_days: float = 90.0
    # Live logs are a convenience while runs run: the archive in the object store is the record.
    log_max_age_days: float = 7.0
    log_max_bytes: int = 4 * 2**30
    # Copies of each stream on the servers of a cluster (1 on a single server); see `replicas_for`.
    replicas: int = 1


# Three copies survive the loss of one server with a quorum left; more only cost writes.
MAX_DEFAULT_REPLICAS = 3


def replicas_for(nats_url: str, configured: int | None = None) -> int:
    """The streams' replica count: `configured` (GXWF_STREAM_REPLICAS), else one per server listed in the NATS
    URL up to three. A cluster reached through one URL needs the setting."""
    return configured if configured is not None else min(MAX_DEFAULT_REPLICAS, len(nats_servers(nats_url)))


def stream_configs(settings: StreamSettings) -> list[StreamConfig]:
    day = 24 * 3600.0
    return [
        StreamConfig(
            name=STREAM,
            description="gaiax-workflows events: EDC facts and commands, workflow facts and commands",
            subjects=list(STREAM_SUBJECTS),
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            # Old events are the pipeline's state in flight: a flood must be refused, not make room by them.
            discard=DiscardPolicy.NEW,
            max_age=settings.max_age_days * day,
            max_bytes=settings.max_bytes,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.replicas,
        ),
        StreamConfig(
            name=DLQ_STREAM,
            description="Events a handler gave up on, with the error",
            subjects=[f"{DLQ_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            max_age=settings.dlq_max_age_days * day,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.replicas,
        ),
        StreamConfig(
            name=LOG_STREAM,
            description="Runs' output while they run, in chunks (headers: attempt, offset); archived to S3 at the end",
            subjects=[f"{LOG_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=settings.log_max_age_days * day,
            max_bytes=settings.log_max_bytes,
            max_msg_size=LOG_CHUNK_BYTES + 4096,
            duplicate_window=settings.duplicate_window_seconds,
            num_replicas=settings.replicas,
        ),
    ]


async def ensure_streams(js: JetStreamContext, settings: StreamSettings | None = None) -> None:
    """Create the streams, or bring an existing one to this configuration (idempotent, at every start). On a
    cluster that includes the replica count: JetStream scales an existing stream's copies up or down."""
    for config in stream_configs(settings or StreamSettings()):
        name = config.name or ""
        try:
            before = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)
        else:
            await js.update_stream(config)
            if before.config.num_replicas != config.num_replicas:
                await _until_replicated(js, name, config.num_replicas or 1)


async def _until_replicated(js: JetStreamContext, name: str, replicas: int, timeout: float = 30.0) -> None:
    """Wait (bounded) until a re-scaled stream has a leader and its copies are current: until then it answers no
    publish, and the components about to start would begin with failures. After `timeout`, go on: they retry."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        cluster = (await js.stream_info(name)).cluster
        if cluster is not None and cluster.leader:
            peers = cluster.replicas or []
            if len(peers) == replicas - 1 and all(peer.current for peer in peers):
                return
        await asyncio.sleep(0.1)
