"""A running ingress per test, on fresh streams and a fresh database."""

from tests.backbone.conftest import js, nc, settings, store
from tests.edc_fixtures import ingress

__all__ = ["ingress", "js", "nc", "settings", "store"]
