"""Container logs, kept per pod uid: the kubelet side appends, pods/log reads and follows them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from fakekube.errors import ApiError, bad_request


@dataclass
class LogLine:
    time: str
    text: str


@dataclass
class PodLogs:
    _lines: dict[tuple[str, str], list[LogLine]] = field(default_factory=dict)

    def append(self, uid: str, container: str, text: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines = self._lines.setdefault((uid, container), [])
        for line in text.splitlines(keepends=True):
            lines.append(LogLine(stamp, line if line.endswith("\n") else line + "\n"))

    def lines(self, uid: str, container: str) -> list[LogLine]:
        return self._lines.get((uid, container), [])

    def forget(self, uid: str) -> None:
        for key in [k for k in self._lines if k[0] == uid]:
            del self._lines[key]


def container_of(pod: dict[str, Any], wanted: str | None) -> str:
    """The container a pods/log request means, with the apiserver's 400s for missing or unknown names."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    app = [c["name"] for c in spec.get("containers") or []]
    init = [c["name"] for c in spec.get("initContainers") or []]
    if wanted is None:
        if len(app) == 1:
            return str(app[0])
        choices = " ".join(app)
        raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{choices}]")
    if wanted not in app + init:
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def container_state(pod: dict[str, Any], container: str) -> dict[str, Any]:
    status = pod.get("status") or {}
    for item in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if item.get("name") == container:
            state = item.get("state") or {}
            return state if isinstance(state, dict) else {}
    return {}


def check_readable(pod: dict[str, Any], container: str) -> None:
    """Logs of a container that has not started are a 400, as from a real kubelet."""
    state = container_state(pod, container)
    if "running" in state or "terminated" in state:
        return
    name = pod["metadata"]["name"]
    reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
    why = "trying and failing to pull image" if reason in ("ImagePullBackOff", "ErrImagePull") else reason
    raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {why}')


def is_finished(pod: dict[str, Any], container: str) -> bool:
    return "terminated" in container_state(pod, container)


def render(lines: list[LogLine], timestamps: bool) -> bytes:
    return "".join(f"{line.time} {line.text}" if timestamps else line.text for line in lines).encode()
