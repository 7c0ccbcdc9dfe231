"""Where a run's inputs land and what its workload is told about them, the same on every backend.

The local backend stages inputs itself (from the object store, in the handler); a Kubernetes run pod stages its
own (`gxwf stage in`, by presigned URLs) and the Kubernetes backend unpacks the outputs a pod uploaded. The ways
they move the bytes differ in kind (credentials here, signed URLs there), but the layout a workload sees and the
checks that keep every name inside its directory must not drift apart: they are defined once, here.

Standard library only: the pod side imports it from the gxwf image without any server client.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath


def input_env_name(name: str) -> str:
    """`GXWF_INPUT_<NAME>`: the input's name upper-cased, anything but ASCII letters, digits and _ as _."""
    return "GXWF_INPUT_" + re.sub(r"[^A-Z0-9_]", "_", name.upper())


def input_env(input_dir: Path | PurePosixPath, names: Iterable[str]) -> dict[str, str]:
    """`GXWF_INPUT_DIR` and one `GXWF_INPUT_<NAME>` per input: a file input is `<dir>/<name>`, a directory input
    the directory `<dir>/<name>/`."""
    return {"GXWF_INPUT_DIR": str(input_dir)} | {input_env_name(name): str(input_dir / name) for name in names}


def object_relative(kind: str, prefix: str, key: str) -> str:
    """Where an uploaded object goes under its input: a file input is the one object itself (""), a directory
    input keeps each object's key below the input's prefix."""
    return "" if kind == "file" else key[len(prefix) :]


def linked_path(path: str | None) -> str | None:
    """The asset's path for an input if it is linked under the working directory: relative paths only. An
    absolute path (`/inputs/scenarios`) is meant for a container image and is never created on a host."""
    return path if path and not path.startswith("/") else None


def inside(root: Path, relative: str) -> Path | None:
    """`root/relative` resolved, or None if it would land outside `root` or be `root` itself. Object keys, archive
    members and asset paths come from consumers' code and uploads: none may climb out (`..`, an absolute path,
    a link already there)."""
    base = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(base) or target == base:
        return None
    return target
