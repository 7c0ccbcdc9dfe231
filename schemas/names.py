"""Names several packages must agree on: leases, object-store key layouts, run log files, the attempt separator.

A writer and its readers are often in different processes (the results handler writes `results/...`, the
WorkflowApi and the dashboard read it; the WorkflowApi holds a download lease the retention sweep checks), so a
name spelled twice is a bug waiting for one side to change. Ids are quoted in keys so that none can climb out of
its consumer's prefix.
"""

from __future__ import annotations

from urllib.parse import quote

# Every run's log, in a local run directory and among its archived results.
LOG_FILE = "log.txt"
MANIFEST_FILE = "manifest.json"
# The header a live log chunk carries its attempt number in (WF_LOGS).
ATTEMPT_HEADER = "Gxwf-Attempt"
OFFSET_HEADER = "Gxwf-Offset"

RESULTS_RETENTION_LEASE = "results-retention"


def attempt_separator(attempt: int) -> str:
    """Written before each attempt after the first, in local logs, Kubernetes logs, archives and live streams."""
    return f"\n=== attempt {attempt} ===\n"


def result_download_lease(run_id: str) -> str:
    """Held while a run's results are downloaded (or a presigned URL for them is valid): retention waits."""
    return f"result-download:{run_id}"


def dispatcher_lease(site: str) -> str:
    return f"jobs-dispatcher:{site}"


def watcher_lease(site: str) -> str:
    return f"jobs-watcher:{site}"


def log_shipper_lease(site: str) -> str:
    return f"jobs-logs:{site}"


def input_prefix(consumer_id: str, input_id: str) -> str:
    return f"inputs/{quote(consumer_id, safe='')}/{quote(input_id, safe='')}/"


def presigned_upload_key(consumer_id: str, input_id: str) -> str:
    """Where a presigned PUT lands: beside the input's prefix, never in it. Completing the upload copies it into
    the input; a PUT with the same URL afterwards changes only this object, which nothing reads."""
    return f"inputs/{quote(consumer_id, safe='')}/{quote(input_id, safe='')}.presigned"


def result_prefix(consumer_id: str, run_id: str) -> str:
    return f"results/{quote(consumer_id, safe='')}/{quote(run_id, safe='')}/"


def staging_prefix(run_id: str) -> str:
    return f"staging/runs/{quote(run_id, safe='')}/"


def outputs_key(run_id: str, attempt: int) -> str:
    """Where an attempt's outputs arrive from its pod, before the results handler publishes them."""
    return f"{staging_prefix(run_id)}{attempt}/outputs.tar"


def local_run_dir_name(run_id: str) -> str:
    """The run's directory under a local backend's runs directory; ValueError for an id that names none."""
    safe = run_id.replace("/", "_").replace("\x00", "_")
    if safe in {"", ".", ".."}:
        raise ValueError(f"invalid run id {run_id!r}")
    return safe
