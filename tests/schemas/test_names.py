"""Names shared across processes are spelled once, in schemas/names.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from schemas.names import attempt_separator, input_prefix, local_run_dir_name, outputs_key, result_prefix

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "adapters",
    "dashboard",
    "edc_ingress",
    "events",
    "gxwf",
    "handlers",
    "http_serving",
    "inprocess",
    "ports",
    "schemas",
    "workflow_api",
)
# A second spelling of any of these would let a writer and its readers drift apart.
SPELLED_ONCE = {
    "attempt separator": re.compile(r"=== attempt "),
    "result download lease": re.compile(r"[\"']result-download:"),
    "dispatcher lease": re.compile(r"[\"']jobs-dispatcher:"),
    "log shipper lease": re.compile(r"[\"']jobs-logs:"),
    "watcher lease": re.compile(r"[\"']jobs-watcher:"),
    "lease spelled at its use": re.compile(r"\.hold\(\s*f?[\"']"),
    "input keys": re.compile(r"[\"']inputs/\{"),
    "result keys": re.compile(r"[\"']results/\{quote"),
    "staging keys": re.compile(r"[\"']staging/runs/"),
}


@pytest.mark.parametrize("name", sorted(SPELLED_ONCE))
def test_a_shared_name_is_spelled_only_in_schemas_names(name: str) -> None:
    pattern = SPELLED_ONCE[name]
    found = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if pattern.search(path.read_text())
    ]
    assert found == ([] if name == "lease spelled at its use" else ["schemas/names.py"])


def test_ids_cannot_climb_out_of_their_prefix() -> None:
    assert input_prefix("did:web:a/b", "in-1") == "inputs/did%3Aweb%3Aa%2Fb/in-1/"
    assert result_prefix("c", "../x") == "results/c/..%2Fx/"
    assert outputs_key("run/1", 2) == "staging/runs/run%2F1/2/outputs.tar"
    assert attempt_separator(3) == "\n=== attempt 3 ===\n"
    with pytest.raises(ValueError, match="invalid run id"):
        local_run_dir_name("..")
