"""One transfer on one timeline: negotiation, provisioning, deployment, asset registration, access, each run
(queued, pending and running apart, with durations), results, deprovisioning; read from the store's documents
and their transition histories, not by replaying the stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ports.queries import OpsQueries

Doc = dict[str, Any]
MAX_RUNS = 200
MAX_CALLS = 200


@dataclass
class Entry:
    label: str
    at: datetime | None
    status: str = "ok"  # ok, active, failed, waiting
    detail: str = ""
    seconds: float | None = None  # how long this step lasted, when it ended


@dataclass
class Phase:
    key: str
    title: str
    entries: list[Entry] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)

    @property
    def started(self) -> datetime | None:
        times = [e.at for e in self.entries if e.at is not None]
        return min(times) if times else None

    @property
    def status(self) -> str:
        statuses = {e.status for e in self.entries}
        for worst in ("failed", "active", "waiting"):
            if worst in statuses:
                return worst
        return "ok" if self.entries else "waiting"


@dataclass
class Timeline:
    transfer_id: str
    provision: Doc
    phases: list[Phase]

    @property
    def state(self) -> str:
        return str(self.provision.get("state"))


def _history(doc: Doc | None) -> list[Doc]:
    return list(doc.get("history") or []) if doc else []


def _at(doc: Doc | None, state: str) -> datetime | None:
    for entry in _history(doc):
        if entry.get("to") == state:
            at: datetime | None = entry.get("at")
            return at
    return None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def _entry(doc: Doc | None, state: str, label: str, *, status: str = "ok", detail: str = "") -> Entry | None:
    at = _at(doc, state)
    if at is None:
        return None
    reason = next((h.get("reason") for h in _history(doc) if h.get("to") == state and h.get("reason")), None)
    return Entry(label, at, status, detail or (reason or ""))


def _keep(*entries: Entry | None) -> list[Entry]:
    return [e for e in entries if e is not None]


async def transfer_timeline(queries: OpsQueries, transfer_id: str) -> Timeline | None:
    found = await queries.transfer(transfer_id, max_runs=MAX_RUNS, max_calls=MAX_CALLS)
    if found is None:
        return None
    provision, deployment, grant, calls = found.provision, found.deployment, found.grant, found.calls
    phases = [
        _negotiation(provision, calls),
        _provisioning(provision),
        _deployment(deployment),
        _registration(provision, deployment),
        _access(provision, grant, calls),
    ]
    phases += [_run(run, found.results.get(run["_id"])) for run in found.runs]
    phases.append(_deprovisioning(provision, deployment, grant, calls))
    phases.append(_dataflow(found.dataflow, provision, calls))
    shown = [p for p in phases if p.entries]
    shown.sort(key=lambda p: (p.started is None, p.started or datetime.max))
    return Timeline(transfer_id, provision, shown)


def _negotiation(provision: Doc, calls: list[Doc]) -> Phase:
    phase = Phase("negotiation", "Contract negotiation")
    asked = [c for c in calls if c.get("operation") in ("transfer_process", "contract_agreement")]
    for call in asked:
        failed = call.get("outcome") != "ok"
        what = "agreement looked up" if call["operation"] == "contract_agreement" else "transfer looked up"
        detail = f"{call.get('method')} {call.get('url')} -> {call.get('status') or call.get('error') or ''}"
        phase.entries.append(
            Entry(f"{what} at connector {call.get('connector')}", call.get("at"), "failed" if failed else "ok", detail)
        )
    if provision.get("agreement_id"):
        phase.entries.append(
            Entry(
                "negotiation finalized",
                phase.started or provision.get("created_at"),
                detail=f"agreement {provision['agreement_id']} for {provision.get('edc_asset_id') or ''}".strip(),
            )
        )
    elif provision.get("failed_step") == "negotiation":
        phase.entries.append(
            Entry("negotiation not finalized", provision.get("updated_at"), "failed", provision.get("reason") or "")
        )
    return phase


def _provisioning(provision: Doc) -> Phase:
    phase = Phase("provisioning", "Provisioning")
    consumer = provision.get("consumer_id") or "?"
    phase.entries = _keep(
        _entry(provision, "requested", "provision requested", detail=f"connector {provision.get('connector')}"),
        _entry(
            provision,
            "deploying",
            "placement done, deploying",
            detail=f"consumer {consumer}, asset {provision.get('asset_id')}",
        ),
        _entry(provision, "failed", f"failed at {provision.get('failed_step') or '?'}", status="failed"),
    )
    return phase


def _deployment(deployment: Doc | None) -> Phase:
    phase = Phase("deployment", "WorkflowApi deployment")
    if deployment is None:
        return phase
    where = f"site {deployment.get('site')} ({deployment.get('backend')})"
    requested = _at(deployment, "requested")
    ready = _at(deployment, "ready")
    entries = _keep(
        _entry(deployment, "requested", "deployment requested", detail=where),
        _entry(deployment, "deploying", "deploying"),
        _entry(deployment, "ready", "WorkflowApi ready", detail=str(deployment.get("workflow_api_url") or "")),
        _entry(deployment, "failed", "deployment failed", status="failed"),
    )
    if ready is not None:
        entries[-1].seconds = _seconds(requested, ready)
    elif deployment.get("state") in ("requested", "deploying"):
        entries[-1].status = "active"
    phase.entries = entries
    if deployment.get("workflow_api_url"):
        phase.links.append(("WorkflowApi", str(deployment["workflow_api_url"])))
    return phase


def _registration(provision: Doc, deployment: Doc | None) -> Phase:
    phase = Phase("registration", "Asset registration")
    assets = ", ".join(
        f"{a.get('asset_id')} v{a.get('version')}" for a in (deployment or {}).get("registered_assets") or []
    )
    # Registration starts when the WorkflowApi is ready and ends when the provisioning hears it is registered.
    ready, granting = _at(deployment, "ready"), _at(provision, "granting")
    phase.entries = _keep(_entry(provision, "granting", "asset registered with the WorkflowApi", detail=assets))
    if phase.entries and granting is not None and ready is not None:
        phase.entries[-1].seconds = _seconds(ready, granting)
    return phase


def _access(provision: Doc, grant: Doc | None, calls: list[Doc]) -> Phase:
    phase = Phase("access", "Access")
    if grant is not None:
        phase.entries.append(
            Entry(
                "access stored (token hashed)",
                _at(grant, "active") or grant.get("created_at"),
                detail=f"{grant.get('workflow_api_url')} for {', '.join(grant.get('asset_ids') or [])}",
            )
        )
    for call in calls:
        if call.get("operation") == "provisioned":
            status = "ok" if call.get("outcome") == "ok" else "failed"
            label = f"connector told: provisioned (attempt {call.get('attempt')})"
            phase.entries.append(
                Entry(
                    _refused_label(call) or label,
                    call.get("at"),
                    status,
                    f"{call.get('status') or call.get('error') or ''}",
                )
            )
    granted = _entry(provision, "granted", "access granted")
    if granted is not None:
        granted.seconds = _seconds(provision.get("created_at"), granted.at)
        granted.detail = "provision to access granted"
        phase.entries.append(granted)
    return phase


def _run(run: Doc, result: Doc | None) -> Phase:
    run_id = str(run["_id"])
    phase = Phase(f"run:{run_id}", f"Run {run_id}")
    history = _history(run)
    for index, entry in enumerate(history):
        state = str(entry.get("to"))
        following = history[index + 1].get("at") if index + 1 < len(history) else None
        last = index + 1 == len(history)
        status = {"failed": "failed", "timed_out": "failed", "stopped": "waiting"}.get(state, "ok")
        if last and state in ("queued", "pending", "running"):
            status = "active"
        detail = entry.get("reason") or ""
        if state in ("succeeded", "failed") and run.get("exit_code") is not None:
            detail = f"exit code {run['exit_code']}" + (f": {detail}" if detail else "")
        phase.entries.append(
            Entry(state, entry.get("at"), status, detail, _seconds(entry.get("at"), following) if following else None)
        )
    phase.links.append(("log", f"/runs/{run_id}/log"))
    if result is not None:
        files = len(result.get("files") or [])
        state = str(result.get("state") or "")
        status = {"failed": "failed", "collecting": "active"}.get(state, "ok")
        detail = f"{files} file(s), manifest {result.get('manifest_key') or '-'}"
        if state == "failed":
            # Publishing gave up: the error is what an operator needs, there is no manifest.
            detail = str(result.get("reason") or "publishing failed")
        phase.entries.append(Entry(f"result {state}", _at(result, state) or result.get("updated_at"), status, detail))
        phase.links.append(("result", f"/runs/{run_id}/result"))
    return phase


_FLOW_STATUS = {"STARTING": "active", "SUSPENDED": "waiting", "TERMINATED": "failed"}
_FLOW_LABELS = {
    "PREPARED": "prepared",
    "STARTING": "start received, starting",
    "STARTED": "started",
    "SUSPENDED": "suspended: the token opens nothing",
    "COMPLETED": "completed",
    "TERMINATED": "terminated",
}


def _dataflow(flow: Doc | None, provision: Doc, calls: list[Doc]) -> Phase:
    """Each state the control plane's data flow went through, and each callback it was sent."""
    phase = Phase("dataflow", "Data flow (Data Plane Signaling)")
    if flow is None:
        return phase
    history = _history(flow)
    for i, step in enumerate(history):
        state = str(step.get("to"))
        last = i == len(history) - 1
        status = _FLOW_STATUS.get(state, "ok") if last else "ok"
        if state == "TERMINATED" and not provision.get("failed_step"):
            status = "ok"  # ended by the control plane, not by a failure here
        detail = step.get("reason") or (flow.get("reason") if last and state == "TERMINATED" else "") or ""
        phase.entries.append(Entry(_FLOW_LABELS.get(state, state.lower()), step.get("at"), status, detail))
    for call in calls:
        if call.get("operation") in ("started", "errored") and call.get("final"):
            failed = call.get("outcome") != "ok"
            detail = f"{call.get('method')} {call.get('url')} -> {call.get('status') or call.get('error') or ''}"
            label = f"control plane told: {call['operation']}"
            phase.entries.append(Entry(label, call.get("at"), "failed" if failed else "ok", detail))
    phase.entries.sort(key=lambda e: (e.at is None, e.at or datetime.max))
    return phase


def _refused_label(call: Doc) -> str | None:
    """A callback the EDC client would not send: its address was not under the connector's callback bases."""
    if call.get("outcome") != "refused":
        return None
    return f"callback refused, nobody called: {call.get('operation')}"


def _deprovisioning(provision: Doc, deployment: Doc | None, grant: Doc | None, calls: list[Doc]) -> Phase:
    phase = Phase("deprovisioning", "Deprovisioning")
    phase.entries = _keep(
        _entry(provision, "deprovisioning", "deprovisioning", detail=provision.get("deprovision_reason") or ""),
        _entry(grant, "revoked", "access revoked"),
        _entry(deployment, "deleting", "deleting the WorkflowApi"),
        _entry(deployment, "deleted", "WorkflowApi deleted"),
    )
    for call in calls:
        if call.get("operation") == "deprovisioned":
            status = "ok" if call.get("outcome") == "ok" else "failed"
            label = _refused_label(call) or "connector told: deprovisioned"
            phase.entries.append(
                Entry(label, call.get("at"), status, str(call.get("status") or call.get("error") or ""))
            )
    done = _entry(provision, "deprovisioned", "deprovisioned")
    if done is not None:
        done.seconds = _seconds(_at(provision, "deprovisioning"), done.at)
        phase.entries.append(done)
    elif phase.entries:
        phase.entries[-1].status = "active"
    return phase


async def recent_transfers(queries: OpsQueries, limit: int = 100) -> list[Doc]:
    return await queries.recent_transfers(limit)
