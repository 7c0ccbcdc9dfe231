"""The fake cluster's nodes and its scheduler: each pending pod is bound to the first node whose labels and free
resources fit it, or reported unschedulable as kube-scheduler words it. The kubelet (fakekube.kubelet) runs it then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fakekube import quantities
from fakekube.client import Client, ClientError, path
from fakekube.scenarios import Scenario
from fakekube.store import now

TERMINAL = ("Succeeded", "Failed")
PODS = "v1"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: str = "16"
    memory: str = "64Gi"
    ephemeral_storage: str = "100Gi"
    gpus: int = 0
    gpu_resource: str = "nvidia.com/gpu"
    labels: dict[str, str] = field(default_factory=dict)

    def allocatable(self) -> dict[str, str]:
        amounts = {"cpu": self.cpu, "memory": self.memory, "ephemeral-storage": self.ephemeral_storage, "pods": "110"}
        if self.gpus:
            amounts[self.gpu_resource] = str(self.gpus)
        return amounts

    def manifest(self) -> dict[str, Any]:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux", **self.labels}
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name, "labels": labels}}

    def status(self) -> dict[str, Any]:
        return {
            "capacity": self.allocatable(),
            "allocatable": self.allocatable(),
            "conditions": [pod_condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")],
            "nodeInfo": {
                "kubeletVersion": "v1.30.0",
                "containerRuntimeVersion": "fakekube://1",
                "osImage": "fakekube",
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kernelVersion": "6.0",
                "kubeProxyVersion": "v1.30.0",
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": self.name,
            },
        }


def default_nodes() -> list[NodeSpec]:
    return [
        NodeSpec("fakekube-cpu"),
        NodeSpec("fakekube-gpu", gpus=4, labels={"nvidia.com/gpu.present": "true"}),
    ]


def pod_condition(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


class Scheduler:
    """Binds each pending pod to the first node whose labels and free resources fit it."""

    def __init__(
        self, client: Client, nodes: list[NodeSpec], scenario_of: Callable[[dict[str, Any]], Scenario]
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.scenario_of = scenario_of
        self._reported: set[str] = set()

    async def schedule(self, pod: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        metadata, spec = pod["metadata"], pod.get("spec") or {}
        if spec.get("nodeName") or metadata.get("deletionTimestamp"):
            return
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            return
        where = path(PODS, "pods", metadata["namespace"], metadata["name"])
        if self.scenario_of(pod).outcome == "unschedulable":
            await self._unschedulable(
                pod,
                f"0/{len(self.nodes)} nodes are available: {len(self.nodes)} node(s) "
                "didn't match Pod's node affinity/selector. preemption: 0/"
                f"{len(self.nodes)} nodes are available: {len(self.nodes)} Preemption "
                "is not helpful for scheduling.",
            )
            return
        node, why = self._fit(pod, pods)
        if node is None:
            await self._unschedulable(pod, why)
            return
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": metadata["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        with contextlib.suppress(ClientError):  # gone or bound meanwhile
            await self.client.create(where + "/binding", binding)

    async def _unschedulable(self, pod: dict[str, Any], message: str) -> None:
        uid = pod["metadata"]["uid"]
        if uid in self._reported:
            return
        self._reported.add(uid)
        where = path(PODS, "pods", pod["metadata"]["namespace"], pod["metadata"]["name"], "status")
        status = {"phase": "Pending", "conditions": [pod_condition("PodScheduled", "False", "Unschedulable", message)]}
        with contextlib.suppress(ClientError):
            await self.client.patch(where, {"status": status})

    def _fit(self, pod: dict[str, Any], pods: list[dict[str, Any]]) -> tuple[str | None, str]:
        wanted = quantities.pod_totals(pod)
        selector = (pod.get("spec") or {}).get("nodeSelector") or {}
        reasons: dict[str, int] = {}
        for node in self.nodes:
            labels = node.manifest()["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                reasons["node(s) didn't match Pod's node affinity/selector"] = (
                    reasons.get("node(s) didn't match Pod's node affinity/selector", 0) + 1
                )
                continue
            free = {k: quantities.parse(v) for k, v in node.allocatable().items()}
            for other in pods:
                if (other.get("spec") or {}).get("nodeName") == node.name and (
                    (other.get("status") or {}).get("phase") not in TERMINAL
                ):
                    for name, value in quantities.pod_totals(other).items():
                        if name.startswith("requests."):
                            res = name[len("requests.") :]
                            free[res] = free.get(res, Decimal(0)) - value
            short = [
                name[len("requests.") :]
                for name, value in wanted.items()
                if name.startswith("requests.") and value > free.get(name[len("requests.") :], Decimal(0))
            ]
            if not short:
                return node.name, ""
            for res in short:
                reasons[f"Insufficient {res}"] = reasons.get(f"Insufficient {res}", 0) + 1
        detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        total = len(self.nodes)
        return None, (
            f"0/{total} nodes are available: {detail}. preemption: 0/{total} nodes are available: "
            f"{total} No preemption victims found for incoming pod."
        )
