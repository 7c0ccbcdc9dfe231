"""The WorkflowApi and the dashboard read the store only through ports (ports.queries, ports.records,
ports.store): a route that reached for a collection would tie the HTTP API to one database and bypass what the
ports promise (declared documents, pagination, projections)."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = "The WorkflowApi and the dashboard read through ports"
# Only these compose adapters into the app; everything else in the two packages is a route or what routes call.
# `store.find(` is the StateStore port's own query (by kind, state and equal fields), not a collection's.
SERVICES = {"workflow_api/service.py", "dashboard/service.py"}
RAW_ACCESS = re.compile(
    r"\bdb\[|\.collection\]|(?<!store)\.(find|find_one|aggregate|count_documents|insert_one|update_one|delete_one)\("
)


def _contract() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found = [c for c in config["tool"]["importlinter"]["contracts"] if c["name"].startswith(CONTRACT)]
    assert len(found) == 1, "the read-side contract is missing from pyproject.toml"
    contract: dict[str, Any] = found[0]
    return contract


def test_the_contract_forbids_the_driver_and_adapters_to_every_route_module() -> None:
    contract = _contract()
    assert contract["type"] == "forbidden"
    assert set(contract["source_modules"]) == {"workflow_api", "dashboard"}
    assert {"pymongo", "adapters"} <= set(contract["forbidden_modules"])
    ignored = contract.get("ignore_imports", [])
    assert all(rule.split(" -> ")[0] in ("workflow_api.service", "dashboard.service") for rule in ignored)


def test_the_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--contract", str(_contract()["id"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KEPT" in done.stdout


def test_no_route_module_touches_a_collection() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("workflow_api", "dashboard")
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in SERVICES
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if RAW_ACCESS.search(line)
    ]
    assert offenders == []


# The log stream's wire format: a subject per run, attempt and offset headers, a separator between attempts.
LOG_STREAM_ACCESS = re.compile(r"\b(log_subject|LOG_STREAM|ATTEMPT_HEADER|OFFSET_HEADER|attempt_separator)\b")


def test_the_log_stream_is_read_through_one_reader() -> None:
    """The WorkflowApi and the dashboard read WF_LOGS through ports.logs.LogReader, which the service modules
    fill with adapters.jetstream_logs.JetStreamLogReader: neither decodes the stream itself."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("workflow_api", "dashboard")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if LOG_STREAM_ACCESS.search(line)
    ]
    assert offenders == []
    for service in SERVICES:
        assert "JetStreamLogReader(" in (ROOT / service).read_text(), service
