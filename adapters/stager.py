"""One stager for every compute backend: a run's inputs fetched by presigned URLs, each object's size and sha256
checked, placed by the input layout (adapters/input_layout.py), and the asset's relative paths linked.

The local backend runs it in the handler's process; on Kubernetes the run pod runs it itself (`gxwf stage in`)
from the plan the backend put in the attempt's Secret. Both build the plan with `stage_plan`, so the two cannot
drift apart in what they fetch, what they accept and where it lands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import httpx

from adapters.input_layout import inside, linked_path, object_relative
from events.payloads.run import StagedInput
from ports.objects import ObjectStore
from schemas.staging import StageFile, StageInput, StagePlan

CHUNK = 1 << 20


class StageError(Exception):
    """One line for the log: which input or output and what went wrong."""


async def stage_plan(
    objects: ObjectStore, inputs: Sequence[StagedInput], *, valid_seconds: int, outputs_url: str | None = None
) -> StagePlan:
    """Presigned GETs, with sizes and sha256, for every object of the run's inputs."""
    planned = []
    for item in inputs:
        files = []
        for obj in await objects.list(item.prefix):
            url = await objects.presigned_url("GET", obj.key, expires_seconds=valid_seconds)
            relative = object_relative(item.kind, item.prefix, obj.key)
            files.append(StageFile(relative=relative, url=url, size=obj.size, sha256=obj.sha256))
        planned.append(StageInput(name=item.name, kind=item.kind, path=linked_path(item.path), files=files))
    return StagePlan(inputs=planned, outputs_url=outputs_url)


def _inside(root: Path, relative: str) -> Path:
    # A plan that breaks the layout fails the step: it can only come from a tampered plan.
    target = inside(root, relative)
    if target is None:
        raise StageError(f"{relative!r} would land outside {root}")
    return target


def _fetch(client: httpx.Client, url: str, dest: Path, size: int | None, sha256: str | None, what: str) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    got = 0
    partial = dest.with_name(dest.name + ".partial")
    with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise StageError(f"{what}: GET answered {response.status_code}")
        with partial.open("wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                got += len(chunk)
    if size is not None and got != size:
        partial.unlink()
        raise StageError(f"{what}: {got} bytes arrived, {size} expected")
    if sha256 is not None and digest.hexdigest() != sha256:
        partial.unlink()
        raise StageError(f"{what}: sha256 {digest.hexdigest()} differs from {sha256}")
    partial.replace(dest)


def stage_in(plan: StagePlan, dest: Path, workdir: Path | None = None, *, client: httpx.Client | None = None) -> int:
    """Every input of the plan under `dest/<name>`; the number of files fetched."""
    fetched = 0
    with client or httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0)) as http:
        for item in plan.inputs:
            fetched += _stage_input(http, item, dest)
    if workdir is not None:
        link_paths(plan.inputs, dest, workdir)
    return fetched


def _stage_input(http: httpx.Client, item: StageInput, dest: Path) -> int:
    if item.kind == "file":
        if len(item.files) != 1:
            raise StageError(f"input {item.name}: a file input is one uploaded object, found {len(item.files)}")
        (only,) = item.files
        _fetch(http, only.url, _inside(dest, item.name), only.size, only.sha256, f"input {item.name}")
        return 1
    root = _inside(dest, item.name)
    root.mkdir(parents=True, exist_ok=True)
    for file in item.files:
        _fetch(
            http, file.url, _inside(root, file.relative), file.size, file.sha256, f"input {item.name}/{file.relative}"
        )
    return len(item.files)


def link_paths(inputs: list[StageInput], dest: Path, workdir: Path) -> None:
    for item in inputs:
        if not item.path:
            continue
        link = _inside(workdir, item.path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(dest / item.name, target_is_directory=item.kind == "directory")
