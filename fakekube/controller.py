"""`FakeController`: the scheduler, kubelet and workload controllers of a cluster, talking HTTP to the API.

It makes Deployments ready (ReplicaSet, one Running and Ready pod per replica), runs Jobs' pods through
their scenario (see `fakekube.scenarios`), keeps Job and Deployment status, and finishes deleted pods the
way a kubelet confirms them. A test steers it with annotations or with this Python API::

    kube.controller.plan("oomkill,succeed", labels={"run": "r1"})   # the next pods that match
    await kube.controller.evict("ns", "pod-name")                   # now, to a running pod

Everything stops with `stop()`: informers, work queues and every pod's task.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

from fakekube.client import Client, ClientError, Informer, path
from fakekube.deployments import DeploymentController, ReplicaSetController
from fakekube.kubelet import Kubelet
from fakekube.scenarios import Plan, Scenario, from_annotations, parse_sequence, tuned
from fakekube.scheduling import NodeSpec, Scheduler, default_nodes
from fakekube.workloads import JobController


@dataclass
class ControllerConfig:
    nodes: list[NodeSpec] = field(default_factory=default_nodes)
    pending: float = 0.01  # seconds a container spends in ContainerCreating
    duration: float = 0.05  # seconds a Job's container runs, unless its scenario says otherwise
    time_scale: float = 1.0  # multiplies activeDeadlineSeconds and progressDeadlineSeconds


class FakeController:
    def __init__(self, url: str, config: ControllerConfig | None = None) -> None:
        self.config = config or ControllerConfig()
        self.client = Client(url)
        self.plans: list[Plan] = []
        self._scenarios: dict[str, Scenario] = {}
        self.scheduler = Scheduler(self.client, self.config.nodes, self.scenario_of)
        self.kubelet = Kubelet(self.client, self.scenario_of, self.config.pending, self.config.duration)
        self.jobs = JobController(self.client, lambda: self._jobs, lambda: self._pods, self.config.time_scale)
        self.replicasets = ReplicaSetController(self.client, lambda: self._sets, lambda: self._pods)
        self.deployments = DeploymentController(
            self.client, lambda: self._deployments, lambda: self._sets, self.config.time_scale
        )
        self.replicasets.on_change = self.deployments.on_set
        self._pods = Informer(self.client, "/api/v1/pods", self._on_pod)
        self._jobs = Informer(self.client, "/apis/batch/v1/jobs", self.jobs.on_job)
        self._sets = Informer(self.client, "/apis/apps/v1/replicasets", self.replicasets.on_set)
        self._deployments = Informer(self.client, "/apis/apps/v1/deployments", self.deployments.on_deployment)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.client.open()
        for node in self.config.nodes:
            with contextlib.suppress(ClientError):  # a restarted controller finds its nodes
                await self.client.create(path("v1", "nodes"), node.manifest())
            await self.client.patch(path("v1", "nodes", name=node.name, sub="status"), {"status": node.status()})
        informers = (self._pods, self._jobs, self._sets, self._deployments)
        for informer in informers:
            self._tasks.append(asyncio.create_task(informer.run(), name=f"informer {informer.where}"))
        for queue in (self.jobs.queue, self.replicasets.queue, self.deployments.queue):
            self._tasks.append(asyncio.create_task(queue.run()))
        await asyncio.gather(*(informer.synced.wait() for informer in informers))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, ClientError, OSError):
                await task
        self._tasks.clear()
        await self.kubelet.stop()
        await self.client.close()

    # --- scenarios

    def plan(
        self,
        scenarios: str | Scenario | list[Scenario],
        *,
        namespace: str | None = None,
        labels: dict[str, str] | None = None,
        name_prefix: str | None = None,
    ) -> Plan:
        """Play these scenarios on the next pods that match, one each, the last one repeating.

        Newer plans win over older ones; a pod's own `fakekube.io/scenario` annotation wins over plans.
        """
        if isinstance(scenarios, str):
            sequence = parse_sequence(scenarios)
        elif isinstance(scenarios, Scenario):
            sequence = [scenarios]
        else:
            sequence = list(scenarios)
        plan = Plan(sequence, namespace=namespace, labels=dict(labels or {}), name_prefix=name_prefix)
        self.plans.insert(0, plan)
        return plan

    def scenario_of(self, pod: dict[str, Any]) -> Scenario:
        """The scenario of a pod, fixed the first time it is asked for."""
        uid = pod["metadata"]["uid"]
        scenario = self._scenarios.get(uid)
        if scenario is None:
            annotations = pod["metadata"].get("annotations") or {}
            scenario = from_annotations(annotations)
            if scenario is None:
                plan = next((p for p in self.plans if p.matches(pod)), None)
                scenario = plan.take() if plan is not None else Scenario()
            scenario = self._scenarios[uid] = tuned(scenario, annotations)
        return scenario

    # --- acting on running pods

    async def act(self, namespace: str, pod: str, scenario: str | Scenario) -> None:
        """End a pod's current state now with this outcome: "evict", "oomkill", "fail:2", "node-lost" ..."""
        outcome = Scenario.parse(scenario) if isinstance(scenario, str) else scenario
        found = self._pods.cache.get((namespace, pod))
        if found is None:
            found = await self.client.get(path("v1", "pods", namespace, pod))
        if not self.kubelet.act(found["metadata"]["uid"], outcome):
            raise LookupError(f"pod {namespace}/{pod} is not running on a fake node")

    async def evict(self, namespace: str, pod: str) -> None:
        await self.act(namespace, pod, "evict")

    async def oomkill(self, namespace: str, pod: str) -> None:
        await self.act(namespace, pod, "oomkill")

    async def lose_node(self, namespace: str, pod: str, *, unknown: bool = False) -> None:
        await self.act(namespace, pod, "node-lost:unknown" if unknown else "node-lost")

    async def finish(self, namespace: str, pod: str, exit_code: int = 0) -> None:
        await self.act(namespace, pod, "succeed" if exit_code == 0 else f"fail:{exit_code}")

    # --- wiring

    async def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        self.jobs.on_pod(kind, pod)
        self.replicasets.on_pod(kind, pod)
        if kind == "DELETED":
            self._scenarios.pop(pod["metadata"]["uid"], None)
        else:
            await self.scheduler.schedule(pod, self._pods.items())
        await self.kubelet.observe(kind, pod)
