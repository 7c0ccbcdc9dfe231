"""The fake kubelet: play each bound pod's scenario (fakekube.scheduling binds them) through
its phases and container states, print its log, and finish it when it is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fakekube.client import Client, ClientError, path
from fakekube.scenarios import Scenario
from fakekube.scheduling import PODS, TERMINAL, pod_condition
from fakekube.store import now


def _names(pod: dict[str, Any]) -> list[str]:
    return [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]


def _image(pod: dict[str, Any], container: str) -> str:
    for item in (pod.get("spec") or {}).get("containers") or []:
        if item["name"] == container:
            return str(item.get("image", ""))
    return ""


@dataclass
class _Running:
    task: asyncio.Task[None]
    actions: asyncio.Queue[Scenario | None]  # None: the pod is being deleted


class Kubelet:
    """One task per bound pod, writing its status over the API as a real kubelet does."""

    def __init__(
        self, client: Client, scenario_of: Callable[[dict[str, Any]], Scenario], pending: float, duration: float
    ) -> None:
        self.client = client
        self.scenario_of = scenario_of
        self.pending = pending
        self.duration = duration
        self._pods: dict[str, _Running] = {}

    async def observe(self, kind: str, pod: dict[str, Any]) -> None:
        metadata = pod["metadata"]
        uid = metadata["uid"]
        if kind == "DELETED":
            running = self._pods.pop(uid, None)
            if running is not None:
                running.task.cancel()
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            return
        running = self._pods.get(uid)
        if running is None:
            if (pod.get("status") or {}).get("phase") in TERMINAL and not metadata.get("deletionTimestamp"):
                return
            actions: asyncio.Queue[Scenario | None] = asyncio.Queue()
            task = asyncio.create_task(self._run(pod, actions), name=f"kubelet-{metadata['name']}")
            running = self._pods[uid] = _Running(task, actions)
        if metadata.get("deletionTimestamp"):
            running.actions.put_nowait(None)

    def act(self, uid: str, scenario: Scenario) -> bool:
        running = self._pods.get(uid)
        if running is None:
            return False
        running.actions.put_nowait(scenario)
        return True

    async def stop(self) -> None:
        for running in self._pods.values():
            running.task.cancel()
        for running in self._pods.values():
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
        self._pods.clear()

    async def _run(self, pod: dict[str, Any], actions: asyncio.Queue[Scenario | None]) -> None:
        life = _PodLife(self, pod, actions)
        try:
            await life.play()
        except ClientError:
            pass  # the pod went away under us
        except asyncio.CancelledError:
            raise


class _Deleted(Exception):
    pass


class _PodLife:
    """The phases of one pod: Pending (pulling, creating), Running (printing), then its outcome."""

    def __init__(self, kubelet: Kubelet, pod: dict[str, Any], actions: asyncio.Queue[Scenario | None]) -> None:
        self.kubelet = kubelet
        self.client = kubelet.client
        self.pod = pod
        self.actions = actions
        metadata = pod["metadata"]
        self.namespace, self.name, self.uid = metadata["namespace"], metadata["name"], metadata["uid"]
        self.containers = _names(pod)
        self.restart_policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        self.scenario = kubelet.scenario_of(pod)
        self.started: str | None = None
        self.restarts = 0

    @property
    def _status_path(self) -> str:
        return path(PODS, "pods", self.namespace, self.name, "status")

    async def _status(self, status: dict[str, Any]) -> None:
        await self.client.patch(self._status_path, {"status": status})

    async def _pause(self, seconds: float) -> Scenario | None:
        """Wait `seconds` (inf: until told); returns an outcome a test asked for, raises on deletion."""
        try:
            action = await asyncio.wait_for(self.actions.get(), None if math.isinf(seconds) else seconds)
        except TimeoutError:
            return None
        if action is None:
            raise _Deleted
        return action

    def _conditions(self, ready: bool, started: bool = True) -> list[dict[str, Any]]:
        flag = "True" if ready else "False"
        reason = None if ready else "ContainersNotReady"
        message = None if ready else f"containers with unready status: [{' '.join(self.containers)}]"
        return [
            pod_condition("PodReadyToStartContainers", "True" if started else "False"),
            pod_condition("Initialized", "True"),
            pod_condition("Ready", flag, reason, message),
            pod_condition("ContainersReady", flag, reason, message),
            pod_condition("PodScheduled", "True"),
        ]

    def _containers(self, state: dict[str, Any], *, ready: bool = False) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "image": _image(self.pod, name),
                "imageID": "" if "waiting" in state else f"fakekube://{_image(self.pod, name)}",
                "containerID": "" if "waiting" in state else f"fakekube://{self.uid}/{name}",
                "ready": ready,
                "started": "running" in state,
                "restartCount": self.restarts,
                "state": state,
            }
            for name in self.containers
        ]

    async def play(self) -> None:
        try:
            override = await self._start()
            if override is None:
                override = await self._print()
            await self._finish(override or self.scenario)
        except _Deleted:
            await self._terminate()

    async def _start(self) -> Scenario | None:
        """Pending until the containers run; an image that cannot be pulled keeps the pod here."""
        base = {
            "phase": "Pending",
            "hostIP": "10.0.0.1",
            "startTime": now(),
            "conditions": self._conditions(False, False),
        }
        if self.scenario.outcome == "image-pull-backoff":
            for reason in ("ErrImagePull", "ImagePullBackOff"):
                message = f'Back-off pulling image "{_image(self.pod, self.containers[0])}"'
                waiting = {"waiting": {"reason": reason, "message": message}}
                await self._status({**base, "containerStatuses": self._containers(waiting)})
                override = await self._pause(self.kubelet.pending)
                if override is not None:
                    return override
            return await self._pause(math.inf)
        await self._status(
            {**base, "containerStatuses": self._containers({"waiting": {"reason": "ContainerCreating"}})}
        )
        override = await self._pause(
            self.scenario.pending if self.scenario.pending is not None else self.kubelet.pending
        )
        if override is not None:
            return override
        ready = self.scenario.outcome != "not-ready"
        self.started = now()
        await self._status(
            {
                "phase": "Running",
                "podIP": "10.244.0.10",
                "podIPs": [{"ip": "10.244.0.10"}],
                "conditions": self._conditions(ready),
                "containerStatuses": self._containers({"running": {"startedAt": self.started}}, ready=ready),
            }
        )
        return None

    async def _print(self) -> Scenario | None:
        duration = self.scenario.duration if self.scenario.duration is not None else self.kubelet.duration
        if self.scenario.outcome in ("hang", "not-ready") or (
            self.scenario.outcome == "succeed" and self.restart_policy == "Always"
        ):
            duration = math.inf
        lines = self.scenario.log.splitlines()
        step = 0.0 if math.isinf(duration) else duration / (len(lines) + 1)
        for line in lines:
            override = await self._pause(step)
            if override is not None:
                return override
            for container in self.containers:
                await self.client.append_log(self.namespace, self.name, container, line + "\n")
        return await self._pause(duration - step * len(lines) if not math.isinf(duration) else duration)

    async def _finish(self, scenario: Scenario) -> None:
        outcome = scenario.outcome
        if outcome == "node-lost":
            await self._lose_node(scenario)
        elif outcome == "evict":
            message = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 10Mi."
            state = {
                "terminated": {
                    "exitCode": 137,
                    "reason": "ContainerStatusUnknown",
                    "startedAt": self.started,
                    "finishedAt": now(),
                    "message": "The container could not be located when the pod was terminated",
                }
            }
            conditions = self._conditions(False)
            conditions.append(pod_condition("DisruptionTarget", "True", "TerminationByKubelet", message))
            await self._status(
                {
                    "phase": "Failed",
                    "reason": "Evicted",
                    "message": message,
                    "conditions": conditions,
                    "containerStatuses": self._containers(state),
                }
            )
            await self._pause(math.inf)
        elif outcome == "crashloop":
            while True:
                self.restarts += 1
                state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off 10s restarting failed container={self.containers[0]}",
                    }
                }
                await self._status(
                    {
                        "phase": "Running",
                        "conditions": self._conditions(False),
                        "containerStatuses": self._containers(state),
                    }
                )
                override = await self._pause(self.kubelet.duration)
                if override is not None:
                    await self._finish(override)
                    return
        elif outcome in ("hang", "not-ready", "image-pull-backoff", "unschedulable"):
            await self._pause(math.inf)
        else:
            await self._exit(*_exit_of(scenario))

    async def _exit(self, code: int, reason: str) -> None:
        if self.restart_policy == "Always":
            # The kubelet restarts the container in place. (A Job's OnFailure is played as a failed pod.)
            await self._finish(Scenario("crashloop"))
            return
        state = {
            "terminated": {
                "exitCode": code,
                "reason": reason,
                "startedAt": self.started or now(),
                "finishedAt": now(),
                "containerID": f"fakekube://{self.uid}",
            }
        }
        await self._status(
            {
                "phase": "Succeeded" if code == 0 else "Failed",
                "conditions": self._conditions(False),
                "containerStatuses": self._containers(state),
            }
        )
        await self._pause(math.inf)

    async def _lose_node(self, scenario: Scenario) -> None:
        conditions = self._conditions(False)
        conditions[2] = pod_condition("Ready", "False", "NodeNotReady", "Node is not ready")
        if scenario.variant == "unknown":
            await self._status(
                {
                    "phase": "Unknown",
                    "reason": "NodeLost",
                    "message": "Node fakekube is unresponsive",
                    "conditions": conditions,
                }
            )
            await self._pause(math.inf)
            return
        # The taint manager evicts, the lost kubelet never confirms, and pod GC force-deletes it.
        conditions.append(
            pod_condition(
                "DisruptionTarget", "True", "DeletionByTaintManager", "Taint manager: deleting due to NoExecute taint"
            )
        )
        await self._status({"conditions": conditions})
        where = path(PODS, "pods", self.namespace, self.name)
        await self.client.delete(where, {"propagationPolicy": "Background"})
        with contextlib.suppress(_Deleted):
            await self._pause(self.kubelet.duration)
        conditions[-1] = pod_condition("DisruptionTarget", "True", "DeletionByPodGC", "PodGC: node no longer exists")
        await self._status({"phase": "Failed", "conditions": conditions})
        await self.client.delete(where, {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})

    async def _terminate(self) -> None:
        """The pod was deleted: stop the containers (SIGTERM: 143) and confirm with a zero grace delete."""
        if math.isinf(self.scenario.terminate_after):
            await asyncio.Event().wait()  # a kubelet that never confirms: the pod stays Terminating
        with contextlib.suppress(TimeoutError):
            await asyncio.sleep(self.scenario.terminate_after)
        if self.started is not None:
            state = {"terminated": {"exitCode": 143, "reason": "Error", "startedAt": self.started, "finishedAt": now()}}
            with contextlib.suppress(ClientError):
                await self._status(
                    {
                        "phase": "Failed",
                        "conditions": self._conditions(False),
                        "containerStatuses": self._containers(state),
                    }
                )
        where = path(PODS, "pods", self.namespace, self.name)
        with contextlib.suppress(ClientError):
            await self.client.delete(where, {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}})


def _exit_of(scenario: Scenario) -> tuple[int, str]:
    if scenario.outcome == "oomkill":
        return 137, "OOMKilled"
    if scenario.outcome == "fail":
        return scenario.exit_code, "Error"
    return 0, "Completed"
