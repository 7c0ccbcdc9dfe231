"""Fencing: what a periodic loop writes while acting under a lease is refused once the lease is no longer its.

The composition root gives each periodic loop its own LeaseGuard as `ctx.leases`, and views of the ports it writes
through (the store, the event sink, the compute backend, the object store, the log sink) that ask the guard
first. The loop's code is unchanged: it takes its lease through `ctx.leases.hold` as before, and the guard
remembers the lease (holder, epoch, local deadline). A write is then refused with LeaseLost

- when the local deadline has passed (renewal time + ttl - a safety margin, on this process's monotonic clock):
  a process paused past its lease (SIGSTOP, a stalled VM) notices on resume, before any round trip;
- when the lease document no longer names this holder with this epoch (another replica took it over).

The store's writes make the second check part of the write itself where the store allows it
(adapters/mongo_fencing.py). Events and backend actions cannot join a store transaction: they are checked
just before (a round trip to the lease document), which leaves a window: a process paused between that check
and its publish (or its call to the backend) longer than the rest of its lease acts once after its successor
took over. What it publishes then has an id derived from what it reports, the same id its successor would give
the same fact, so JetStream keeps one of the two; a backend action (stopping a run at its time limit) is one the
successor would take too.

A loop that takes no lease writes unfenced. LeaseLost ends the pass (the runtime logs it once at info); the next
pass asks for the lease again.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from events.envelope import Envelope
from events.payloads.run import RunSpec
from ports.compute import ComputeBackend, RunArtifacts, RunOwner, WorkloadStatus
from ports.events import EventSink
from ports.leases import Lease, LeaseLost, Leases
from ports.logs import LogSink
from ports.objects import ObjectStore, StoredObject


class LeaseGuard:
    """The leases one loop holds, as it last took them through `hold`; a Leases itself, for the loop's ctx."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.taken: dict[str, Lease] = {}
        # What this loop did under each lease and epoch, for the replica's figures: acts allowed, the wall-clock
        # time of the last one (taken when its check passed), and writes refused.
        self.acts: dict[tuple[str, int], tuple[int, datetime]] = {}
        self.refused = 0

    async def hold(self, name: str, holder: str, ttl_seconds: float) -> Lease | None:
        lease = await self.leases.hold(name, holder, ttl_seconds)
        if lease is None:
            self.taken.pop(name, None)
        else:
            self.taken[name] = lease
        return lease

    async def held(self, name: str) -> bool:
        return await self.leases.held(name)

    async def confirm(self, lease: Lease) -> bool:
        return await self.leases.confirm(lease)

    async def release(self, name: str, holder: str) -> None:
        self.taken.pop(name, None)
        await self.leases.release(name, holder)

    async def release_all(self) -> None:
        """Give up every lease this loop holds (a clean stop: another replica takes over at once)."""
        for lease in list(self.taken.values()):
            await self.release(lease.name, lease.holder)

    def check_local(self) -> None:
        """LeaseLost when a lease's local deadline has passed: no round trip."""
        for lease in self.taken.values():
            if lease.expired():
                self.refused += 1
                raise LeaseLost(lease, "expired before this write")

    async def check(self) -> None:
        """LeaseLost when a lease's deadline passed or its document names another holder or epoch now."""
        self.check_local()
        for lease in list(self.taken.values()):
            if not await self.leases.confirm(lease):
                self.refused += 1
                raise LeaseLost(lease, "is another holder's now")
        self.acted()

    def acted(self) -> None:
        now = datetime.now(UTC)
        for lease in self.taken.values():
            count, _ = self.acts.get((lease.name, lease.epoch), (0, now))
            self.acts[(lease.name, lease.epoch)] = (count + 1, now)


class FencedEvents:
    def __init__(self, events: EventSink, guard: LeaseGuard) -> None:
        self.events = events
        self.guard = guard

    async def publish(self, event: Envelope[Any]) -> None:
        await self.guard.check()
        await self.events.publish(event)


class FencedCompute:
    """The backend's actions (start, stop, discard, release) checked first; what it reports is read freely."""

    def __init__(self, compute: ComputeBackend, guard: LeaseGuard) -> None:
        self.compute = compute
        self.guard = guard
        self.name = compute.name
        self.site = compute.site

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        await self.guard.check()
        return await self.compute.start(run_id, spec, parameters, attempt=attempt, owner=owner)

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        return await self.compute.status(run_id, attempt=attempt)

    async def stop(self, run_id: str) -> bool:
        await self.guard.check()
        return await self.compute.stop(run_id)

    async def artifacts(self, run_id: str) -> RunArtifacts:
        return await self.compute.artifacts(run_id)

    def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        return self.compute.follow_log(run_id, attempt=attempt, offset=offset)

    async def discard(self, run_id: str) -> None:
        await self.guard.check()
        await self.compute.discard(run_id)

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        await self.guard.check()
        return await self.compute.release(consumer_id, run_ids)


class FencedObjects:
    """Objects written or deleted under the lease (retention deleting expired results) checked first."""

    def __init__(self, objects: ObjectStore, guard: LeaseGuard) -> None:
        self.objects = objects
        self.guard = guard

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        await self.guard.check()
        return await self.objects.put_file(key, path, content_type=content_type)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        await self.guard.check()
        return await self.objects.put_bytes(key, data, content_type=content_type)

    async def get_bytes(self, key: str) -> bytes:
        return await self.objects.get_bytes(key)

    async def list(self, prefix: str) -> list[StoredObject]:
        return await self.objects.list(prefix)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> StoredObject:
        await self.guard.check()
        return await self.objects.put_stream(key, chunks, content_type=content_type, sha256=sha256)

    async def head(self, key: str) -> StoredObject | None:
        return await self.objects.head(key)

    def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.objects.read_range(key, start, end)

    async def get_file(self, key: str, path: Path) -> int:
        return await self.objects.get_file(key, path)

    async def delete(self, keys: Sequence[str]) -> None:
        await self.guard.check()
        await self.objects.delete(keys)

    async def presigned_url(
        self,
        method: str,
        key: str,
        *,
        expires_seconds: int,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> str:
        return await self.objects.presigned_url(
            method, key, expires_seconds=expires_seconds, content_type=content_type, sha256=sha256
        )


class FencedLogSink:
    """Chunks are appended while the local deadline holds; no round trip per chunk: a chunk shipped twice carries
    the same message id, so the log stream keeps it once whoever ships it."""

    def __init__(self, sink: LogSink, guard: LeaseGuard) -> None:
        self.sink = sink
        self.guard = guard

    async def append(self, run_id: str, attempt: int, offset: int, chunk: bytes) -> None:
        self.guard.check_local()
        await self.sink.append(run_id, attempt, offset, chunk)

    async def shipped(self, run_id: str, attempt: int) -> int | None:
        return await self.sink.shipped(run_id, attempt)
