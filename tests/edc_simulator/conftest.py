"""The simulator talks to a real ingress on the session's servers."""

from tests.backbone.conftest import js, nc, settings, store
from tests.edc_fixtures import ingress

__all__ = ["ingress", "js", "nc", "settings", "store"]
