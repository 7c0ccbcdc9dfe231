"""In-memory implementations of the ports the handlers use, deterministic and inspectable by tests.

Each keeps its port's contract (idempotent starts, confirmed stops, de-duplicated catalogue versions ...); where a
real adapter would wait on the outside world, these change state only when the test driver says so.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from events.envelope import Envelope
from events.payloads.run import FailureKind, RunSpec
from ports.compute import RunArtifacts, RunOwner, StartRefused, WorkloadPhase, WorkloadStatus
from ports.deployments import DeploymentError, DeploymentSpec
from ports.edc import AccessAddress, AgreementInfo, EdcNotFound, ProvisionTarget, TransferProcessInfo
from ports.objects import StoredObject
from schemas.assets import StoredAsset, WorkflowAssetDefinition, next_version, serving_edc_asset
from schemas.names import LOG_FILE, attempt_separator


class RecordingSink:
    """An EventSink that keeps every publish, duplicates included (what a handler tried, not what a stream kept)."""

    def __init__(self) -> None:
        self.events: list[Envelope[Any]] = []

    async def publish(self, event: Envelope[Any]) -> None:
        self.events.append(event)

    def of(self, subject: str) -> list[Envelope[Any]]:
        return [event for event in self.events if event.type == subject]


@dataclass
class Workload:
    run_id: str
    attempt: int
    spec: RunSpec
    parameters: dict[str, str]
    owner: RunOwner | None
    phase: WorkloadPhase = WorkloadPhase.RUNNING
    exit_code: int | None = None
    failure: FailureKind | None = None
    detail: str | None = None
    waiting: bool = False
    output: bytes = b""


class FakeCompute:
    """A ComputeBackend whose workloads end when the test says (`finish`, `vanish`), or at once with
    `exit_on_start`: the watcher's next pass then sees them exited with that status."""

    def __init__(
        self, workdir: Path, *, site: str = "local", name: str = "fake", exit_on_start: int | None = None
    ) -> None:
        self.workdir = workdir
        self.site = site
        self.name = name
        self.exit_on_start = exit_on_start
        self.workloads: dict[tuple[str, int], Workload] = {}
        self.starts: list[tuple[str, int]] = []
        self.stops: list[str] = []
        self.discarded: list[str] = []
        self.released: list[tuple[str, list[str]]] = []
        # Run ids whose start the backend refuses (StartRefused), with the reason.
        self.refuse: dict[str, str] = {}
        # False: a stop is not confirmed (processes outlive it), so the stop handler raises and is retried.
        self.stop_confirms = True

    async def start(
        self, run_id: str, spec: RunSpec, parameters: dict[str, str], *, attempt: int = 1, owner: RunOwner | None = None
    ) -> str:
        if run_id in self.refuse:
            raise StartRefused(self.refuse[run_id])
        key = (run_id, attempt)
        if key not in self.workloads:
            self.starts.append(key)
            workload = Workload(run_id, attempt, spec, parameters, owner, output=f"attempt {attempt}\n".encode())
            if self.exit_on_start is not None:
                _end(workload, self.exit_on_start)
            self.workloads[key] = workload
        return f"{self.name}-{run_id}-{attempt}"

    def finish(
        self,
        run_id: str,
        exit_code: int = 0,
        *,
        attempt: int | None = None,
        failure: FailureKind | None = None,
        detail: str | None = None,
    ) -> None:
        """The workload of the run's latest attempt (or the one given) exits."""
        _end(self._workload(run_id, attempt), exit_code, failure=failure, detail=detail)

    def vanish(self, run_id: str, *, attempt: int | None = None) -> None:
        workload = self._workload(run_id, attempt)
        workload.phase, workload.failure = WorkloadPhase.MISSING, "vanished"

    def wait(self, run_id: str, detail: str = "image pull", *, attempt: int | None = None) -> None:
        workload = self._workload(run_id, attempt)
        workload.waiting, workload.detail = True, detail

    def _workload(self, run_id: str, attempt: int | None) -> Workload:
        attempts = sorted(a for r, a in self.workloads if r == run_id)
        if not attempts:
            raise KeyError(f"run {run_id} was never started here")
        return self.workloads[(run_id, attempt or attempts[-1])]

    async def status(self, run_id: str, *, attempt: int = 1) -> WorkloadStatus:
        workload = self.workloads.get((run_id, attempt))
        if workload is None:
            return WorkloadStatus(WorkloadPhase.MISSING, failure="vanished")
        return WorkloadStatus(
            workload.phase,
            exit_code=workload.exit_code,
            detail=workload.detail,
            failure=workload.failure,
            waiting=workload.waiting,
        )

    async def stop(self, run_id: str) -> bool:
        self.stops.append(run_id)
        for (rid, _), workload in self.workloads.items():
            if rid == run_id and workload.phase is WorkloadPhase.RUNNING and self.stop_confirms:
                _end(workload, -15, detail="killed")
        return self.stop_confirms

    async def artifacts(self, run_id: str) -> RunArtifacts:
        attempts = sorted(a for r, a in self.workloads if r == run_id)
        directory = self.workdir / hashlib.sha256(run_id.encode()).hexdigest()[:16]
        directory.mkdir(parents=True, exist_ok=True)
        log = directory / LOG_FILE
        # Every attempt in order, each after the first behind its separator, as the real backends write it.
        log.write_bytes(
            b"".join(
                (attempt_separator(a).encode() if a > 1 else b"") + self.workloads[(run_id, a)].output for a in attempts
            )
        )
        if not attempts or self.workloads[(run_id, attempts[-1])].exit_code != 0:
            return RunArtifacts(outputs=[], log=log)
        result = directory / "result.txt"
        result.write_text(f"{run_id} done\n")
        return RunArtifacts(outputs=[("result.txt", result)], log=log)

    async def follow_log(self, run_id: str, *, attempt: int, offset: int = 0) -> AsyncIterator[bytes]:
        workload = self.workloads.get((run_id, attempt))
        if workload is not None and workload.output[offset:]:
            yield workload.output[offset:]

    async def discard(self, run_id: str) -> None:
        self.discarded.append(run_id)

    async def release(self, consumer_id: str, run_ids: list[str]) -> bool:
        self.released.append((consumer_id, sorted(run_ids)))
        return True


def _end(workload: Workload, exit_code: int, *, failure: FailureKind | None = None, detail: str | None = None) -> None:
    workload.phase, workload.exit_code, workload.waiting = WorkloadPhase.EXITED, exit_code, False
    workload.failure = failure if failure is not None else (None if exit_code == 0 else "exit_code")
    workload.detail = detail


class MemoryObjects:
    """An ObjectStore in a dict; the sha256 is computed on upload as S3's adapter does."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, str | None, str | None]] = {}

    def _stored(self, key: str) -> StoredObject:
        data, content_type, sha256 = self.objects[key]
        return StoredObject(key=key, size=len(data), sha256=sha256, content_type=content_type)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str | None = None) -> StoredObject:
        self.objects[key] = (data, content_type, hashlib.sha256(data).hexdigest())
        return self._stored(key)

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> StoredObject:
        return await self.put_bytes(key, await asyncio.to_thread(path.read_bytes), content_type=content_type)

    async def put_stream(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> StoredObject:
        data = b"".join([chunk async for chunk in chunks])
        stored = await self.put_bytes(key, data, content_type=content_type)
        if sha256 is not None:
            self.objects[key] = (data, content_type, sha256)
        return (
            stored if sha256 is None else StoredObject(key, len(data), hashlib.sha256(data).hexdigest(), content_type)
        )

    async def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise KeyError(key)
        return self.objects[key][0]

    async def list(self, prefix: str) -> list[StoredObject]:
        return [self._stored(key) for key in sorted(self.objects) if key.startswith(prefix)]

    async def head(self, key: str) -> StoredObject | None:
        return self._stored(key) if key in self.objects else None

    async def read_range(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        data = await self.get_bytes(key)
        yield data[start : None if end is None else end + 1]

    async def get_file(self, key: str, path: Path) -> int:
        data = await self.get_bytes(key)
        await asyncio.to_thread(path.write_bytes, data)
        return len(data)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)

    async def presigned_url(
        self,
        method: str,
        key: str,
        *,
        expires_seconds: int,
        content_type: str | None = None,
        sha256: str | None = None,
    ) -> str:
        return f"memory://{method.lower()}/{key}?expires={expires_seconds}"


class MemoryAssets:
    """The AssetCatalogue with the MongoDB catalogue's rules: a version per changed content, lookup by EDC id
    with the asset named like the EDC asset first, deleted assets offered to nobody new."""

    def __init__(self) -> None:
        self.versions: dict[tuple[str, int], StoredAsset] = {}

    async def apply(self, definition: WorkflowAssetDefinition) -> tuple[StoredAsset, bool]:
        current = await self.latest(definition.id)
        stored = next_version(current, definition)
        if stored is None:
            assert current is not None
            return current, False
        self.versions[(stored.asset_id, stored.version)] = stored
        return stored.model_copy(deep=True), True

    async def latest(self, asset_id: str) -> StoredAsset | None:
        found = [v for (a, _), v in self.versions.items() if a == asset_id]
        return max(found, key=lambda v: v.version).model_copy(deep=True) if found else None

    async def version(self, asset_id: str, version: int) -> StoredAsset | None:
        found = self.versions.get((asset_id, version))
        return found.model_copy(deep=True) if found else None

    async def for_edc_asset(self, edc_asset_id: str) -> StoredAsset | None:
        ids = sorted(
            {
                a
                for (a, _), v in self.versions.items()
                if a == edc_asset_id or edc_asset_id in v.definition.edc_asset_ids
            }
        )
        return serving_edc_asset(edc_asset_id, [await self.latest(asset_id) for asset_id in ids])

    async def list_latest(self, *, include_deleted: bool = False) -> list[StoredAsset]:
        found = [await self.latest(asset_id) for asset_id in sorted({a for a, _ in self.versions})]
        return [a for a in found if a is not None and (include_deleted or not a.deleted)]

    async def delete(self, asset_id: str) -> bool:
        changed = False
        for key, stored in self.versions.items():
            if key[0] == asset_id and not stored.deleted:
                self.versions[key] = stored.model_copy(update={"deleted": True})
                changed = True
        return changed


@dataclass
class ProvisionedCall:
    target: ProvisionTarget
    access: AccessAddress
    resource_name: str


@dataclass
class DeprovisionedCall:
    target: ProvisionTarget
    provisioned_resource_id: str | None
    error: str | None


@dataclass
class FakeEdc:
    """A connector's management API and callback receiver: transfers and agreements the test declares, and
    every callback kept."""

    transfers: dict[str, TransferProcessInfo] = field(default_factory=dict)
    agreements: dict[str, AgreementInfo] = field(default_factory=dict)
    provisioned_calls: list[ProvisionedCall] = field(default_factory=list)
    deprovisioned_calls: list[DeprovisionedCall] = field(default_factory=list)

    def negotiated(self, transfer_process_id: str, asset_id: str, consumer_id: str) -> None:
        """A finalized negotiation and the transfer that uses its agreement."""
        agreement_id = f"agreement-{transfer_process_id}"
        self.agreements[agreement_id] = AgreementInfo(agreement_id, asset_id, consumer_id, "did:web:provider.example")
        self.transfers[transfer_process_id] = TransferProcessInfo(
            transfer_process_id, "PROVISIONING", asset_id, agreement_id
        )

    async def transfer_process(self, connector: str, transfer_process_id: str) -> TransferProcessInfo:
        if transfer_process_id not in self.transfers:
            raise EdcNotFound("transfer_process", f"{transfer_process_id} not found", status=404)
        return self.transfers[transfer_process_id]

    async def contract_agreement(self, connector: str, agreement_id: str) -> AgreementInfo:
        if agreement_id not in self.agreements:
            raise EdcNotFound("contract_agreement", f"{agreement_id} not found", status=404)
        return self.agreements[agreement_id]

    async def verify_callback(self, target: ProvisionTarget) -> None:
        return None

    async def provisioned(self, target: ProvisionTarget, access: AccessAddress, *, resource_name: str) -> None:
        self.provisioned_calls.append(ProvisionedCall(target, access, resource_name))

    async def deprovisioned(
        self, target: ProvisionTarget, *, provisioned_resource_id: str | None = None, error: str | None = None
    ) -> None:
        self.deprovisioned_calls.append(DeprovisionedCall(target, provisioned_resource_id, error))


class FakeDeployments:
    """A DeploymentBackend that deploys at once (or fails with `failure`) and remembers what is deployed."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.deployed: dict[str, DeploymentSpec] = {}
        self.deploys: list[str] = []
        self.deletes: list[str] = []
        self.failure: DeploymentError | None = None

    async def deploy(self, spec: DeploymentSpec) -> str:
        self.deploys.append(spec.deployment_id)
        if self.failure is not None:
            raise self.failure
        self.deployed[spec.deployment_id] = spec
        return f"http://workflow-api.test/{spec.deployment_id}"

    async def delete(self, spec: DeploymentSpec) -> bool:
        self.deletes.append(spec.deployment_id)
        self.deployed.pop(spec.deployment_id, None)
        return True
