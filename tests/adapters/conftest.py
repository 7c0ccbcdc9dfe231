"""Adapters are tested against the session's real servers, each test on a fresh database."""

from tests.backbone.conftest import settings, store

__all__ = ["settings", "store"]
