"""The stage steps inside a Kubernetes run pod (`gxwf stage in|out`), run from the gxwf image:

- `stage in` (an init container) fetches the run's inputs into /inputs before the workload starts, checking
  each object's size and sha256, and links the asset's relative input paths under the working directory;
- `stage out` (a native sidecar) waits until the kubelet stops it after the workload ended, then uploads a tar
  of the outputs directory (regular files only: links could point anywhere) to its presigned URL.

Both read a plan of presigned URLs (schemas/staging.py) from the attempt's Secret: no S3 credentials in the pod.
"""

from __future__ import annotations

import hashlib
import signal
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from adapters.input_layout import inside
from schemas.staging import StageInput, StagePlan

_CHUNK = 1 << 20


class StageError(Exception):
    """One line for the pod's log: which input or output and what went wrong."""


def load_plan(path: Path) -> StagePlan:
    try:
        return StagePlan.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as error:
        raise StageError(f"{path}: not a stage plan: {error}") from None


def _inside(root: Path, relative: str) -> Path:
    # The local backend places its inputs by the same rule (adapters/input_layout.py); here a plan that breaks it
    # fails the step, since it can only come from a tampered Secret.
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
            for chunk in response.iter_bytes(_CHUNK):
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
        _link_paths(plan.inputs, dest, workdir)
    return fetched


def _stage_input(http: httpx.Client, item: StageInput, dest: Path) -> int:
    if item.kind == "file":
        if len(item.files) != 1:
            raise StageError(
                f"input {item.name}: a file input needs exactly one object, the plan has {len(item.files)}"
            )
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


def _link_paths(inputs: list[StageInput], dest: Path, workdir: Path) -> None:
    for item in inputs:
        if not item.path:
            continue
        link = _inside(workdir, item.path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and not link.is_symlink():
            link.symlink_to(dest / item.name, target_is_directory=item.kind == "directory")


def stage_out(plan: StagePlan, src: Path, *, wait: bool = True, client: httpx.Client | None = None) -> int:
    """Wait for SIGTERM (the kubelet stopping the sidecar once the workload ended), then upload the outputs; the
    number of files uploaded."""
    if wait:
        stopped = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stopped.set())
        stopped.wait()
    if plan.outputs_url is None:
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "outputs.tar"
        count = _tar_outputs(src, archive)
        with client or httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0)) as http, archive.open("rb") as body:
            response = http.put(
                plan.outputs_url,
                content=_chunks(body),
                headers={"Content-Length": str(archive.stat().st_size), "Content-Type": "application/x-tar"},
            )
        if response.status_code not in (200, 201, 204):
            raise StageError(f"outputs: PUT answered {response.status_code}: {response.text[:200]}")
    return count


def _chunks(body: BinaryIO) -> Iterator[bytes]:
    while chunk := body.read(_CHUNK):
        yield chunk


def _tar_outputs(src: Path, archive: Path) -> int:
    count = 0
    with tarfile.open(archive, "w") as tar:
        if src.is_dir():
            for path in sorted(src.rglob("*")):
                # Regular files only: a link could name anything on the node.
                if path.is_file() and not path.is_symlink():
                    tar.add(path, arcname=str(path.relative_to(src)), recursive=False)
                    count += 1
    return count
