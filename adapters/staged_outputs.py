"""What a run's own stage-out step uploaded (a tar of its outputs directory, by a presigned PUT), fetched and
unpacked for the results handler: shared by the backends whose workloads stage their outputs out themselves
(Kubernetes Jobs, Slurm jobs)."""

from __future__ import annotations

import asyncio
import shutil
import tarfile
from pathlib import Path

from adapters.input_layout import inside
from ports.objects import ObjectStore
from schemas.names import outputs_key, staging_prefix

# S3 signs for at most 7 days.
LONGEST_SIGNATURE_SECONDS = 7 * 24 * 3600
# What a run's outputs archive may unpack to on the handlers' disk, unless the backend is given other limits.
OUTPUTS_MAX_BYTES = 10 * 2**30
OUTPUTS_MAX_ENTRIES = 10_000


class OutputsTooLarge(ValueError):
    """The outputs archive a run uploaded unpacks to more than the limits: nothing of it is kept."""


async def fetch_outputs(
    objects: ObjectStore,
    run_id: str,
    attempt: int,
    root: Path,
    *,
    max_bytes: int = OUTPUTS_MAX_BYTES,
    max_entries: int = OUTPUTS_MAX_ENTRIES,
) -> list[tuple[str, Path]]:
    """What the attempt's stage-out sidecar uploaded, unpacked under `root`. An attempt whose sidecar never
    finished (evicted, node lost) left no archive: no outputs."""
    key = outputs_key(run_id, attempt)
    if key not in {o.key for o in await objects.list(staging_prefix(run_id))}:
        return []
    archive = root.with_suffix(".tar")
    root.parent.mkdir(parents=True, exist_ok=True)
    await objects.get_file(key, archive)
    try:
        return await asyncio.to_thread(unpack, archive, root, max_bytes=max_bytes, max_entries=max_entries)
    finally:
        archive.unlink(missing_ok=True)


async def remove_staged(objects: ObjectStore, run_id: str) -> None:
    """Every archive the run's attempts uploaded: once its consumer is released nobody asks for them."""
    staged = [o.key for o in await objects.list(staging_prefix(run_id))]
    if staged:
        await objects.delete(staged)


def unpack(
    archive: Path, root: Path, *, max_bytes: int = OUTPUTS_MAX_BYTES, max_entries: int = OUTPUTS_MAX_ENTRIES
) -> list[tuple[str, Path]]:
    """Regular files of the archive under `root`, none outside it: it came from a pod the consumer's code ran in,
    so its size is the consumer's choice too. Past `max_entries` members (of any kind) or `max_bytes` of files,
    nothing is kept and OutputsTooLarge says which limit."""
    try:
        return _unpack(archive, root, max_bytes, max_entries)
    except OutputsTooLarge:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _unpack(archive: Path, root: Path, max_bytes: int, max_entries: int) -> list[tuple[str, Path]]:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    base = root.resolve()
    found: list[tuple[str, Path]] = []
    entries = 0
    total = 0
    with tarfile.open(archive, "r:") as tar:
        # next() rather than iteration, clearing what tarfile keeps of each member: a member list as long as
        # the archive would be memory the consumer chooses.
        while (member := tar.next()) is not None:
            tar.members.clear()  # type: ignore[attr-defined]  # an attribute typeshed leaves out
            entries += 1
            if entries > max_entries:
                raise OutputsTooLarge(f"the run's outputs hold more than {max_entries} entries")
            if not member.isreg():
                continue
            total += member.size
            if total > max_bytes:
                raise OutputsTooLarge(f"the run's outputs unpack to more than {max_bytes} bytes")
            target = inside(root, member.name)
            if target is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            if source is None:
                continue
            with source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            found.append((str(target.relative_to(base)), target))
    return sorted(found)
