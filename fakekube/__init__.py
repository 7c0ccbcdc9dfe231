"""A fake Kubernetes API server for tests, driven over HTTP like a real one, with a fake controller."""

from fakekube.calls import ApiCall
from fakekube.controller import ControllerConfig, FakeController
from fakekube.kubelet import NodeSpec
from fakekube.scenarios import Plan, Scenario
from fakekube.server import FakeKubeServer

__all__ = ["ApiCall", "ControllerConfig", "FakeController", "FakeKubeServer", "NodeSpec", "Plan", "Scenario"]
