"""A fake Kubernetes cluster for tests: an API server driven over HTTP like a real one, and a controller.

    async with FakeKubeServer() as kube:                   # 127.0.0.1, a free port
        async with kube.api_client() as api:               # or config.load_kube_config(kube.kubeconfig_path)
            await BatchV1Api(api).create_namespaced_job("ns", body)
        await kube.wait_for(lambda: kube.get("jobs", "name", "ns")["status"].get("succeeded"))
        kube.calls["create", "jobs.batch"]                 # requests of the code under test, by verb/resource
        kube.objects("Pod", "ns")                          # live objects, for assertions
        kube.controller.plan("oomkill,succeed", labels={"job-name": "name"})   # steer pods you did not write
        await kube.controller.evict("ns", "pod")           # or act on a running one

Pods follow a scenario (`fakekube.scenarios`): succeed, fail:N, oomkill, evict, image-pull-backoff,
unschedulable, node-lost, hang, crashloop, not-ready. `python -m fakekube --port P` serves one by hand.
"""

from fakekube.calls import ApiCall
from fakekube.controller import ControllerConfig, FakeController
from fakekube.scenarios import Plan, Scenario
from fakekube.scheduling import NodeSpec
from fakekube.server import FakeKubeServer

__all__ = ["ApiCall", "ControllerConfig", "FakeController", "FakeKubeServer", "NodeSpec", "Plan", "Scenario"]
