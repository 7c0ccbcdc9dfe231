"""Stored documents declare every field they carry."""

from __future__ import annotations

from schemas.registry import DOCUMENT_KINDS


def test_every_kind_forbids_undeclared_fields() -> None:
    assert all(kind.model_config.get("extra") == "forbid" for kind in DOCUMENT_KINDS)
