"""A fake Kubernetes API server for tests, driven over HTTP like a real one, with a fake controller."""

from fakekube.server import FakeKubeServer

__all__ = ["FakeKubeServer"]
