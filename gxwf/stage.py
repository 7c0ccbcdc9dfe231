"""The stage steps inside a Kubernetes run pod (`gxwf stage in|out`), run from the gxwf image:

- `stage in` (an init container) fetches the run's inputs into /inputs before the workload starts, checking
  each object's size and sha256, and links the asset's relative input paths under the working directory (the
  one stager every backend uses, adapters/stager.py);
- `stage out` (a native sidecar) waits until the kubelet stops it after the workload ended, then uploads a tar
  of the outputs directory (regular files only: links could point anywhere) to its presigned URL.

Both read a plan of presigned URLs (schemas/staging.py) from the attempt's Secret: no S3 credentials in the pod.
"""

from __future__ import annotations

import signal
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import httpx

from adapters.stager import CHUNK, StageError
from schemas.staging import StagePlan


def load_plan(path: Path) -> StagePlan:
    try:
        return StagePlan.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as error:
        raise StageError(f"{path}: not a stage plan: {error}") from None


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
    while chunk := body.read(CHUNK):
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
