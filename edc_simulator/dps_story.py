"""One transfer as an EDC 0.18 or main control plane drives a registered data plane through Data Plane Signaling:
start, then suspend, resume and terminate (or completed), checking after each step what the consumer's token
opens at the WorkflowApi the data address names."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from edc_simulator import dps
from edc_simulator.dps_auth import TokenUnavailable
from edc_simulator.ledger import Transfer

if TYPE_CHECKING:
    from edc_simulator.connector import Sent, SimulatedConnector

DATAPLANE_ID = dps.DATAPLANE_ID
# How long a token check waits for the answer it expects before it reports the one it got.
CHECK_SECONDS = 10.0


@dataclass
class TokenCheck:
    """`GET {endpoint}/v1/assets` with the consumer's token at one moment of the story."""

    moment: str
    url: str
    status: int | None
    expected: int
    # How long until the answer was the expected one (or the last answer came): a revocation reaches the data
    # plane's API asynchronously (its teardown, its cache of tokens).
    waited: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == self.expected


@dataclass
class DpsReport:
    version: str
    transfer: Transfer
    dataplane: dps.DataPlane | None = None
    sent: list[Sent] = field(default_factory=list)
    checks: list[TokenCheck] = field(default_factory=list)
    # The data address the consumer got (from the start answer or the `started` callback), and after resume.
    address: tuple[str, str] | None = None
    resumed: tuple[str, str] | None = None
    errored: dps.SignalingCallback | None = None
    missing: str | None = None
    # The ledger's signaling callbacks (of every transfer): see `callbacks`.
    signals: list[Any] = field(default_factory=list, repr=False)

    @property
    def callbacks(self) -> list[dps.SignalingCallback]:
        """The data plane's callbacks for this transfer, as they arrived (a 409 answered included)."""
        return [c for c in self.signals if c.transfer_id == self.transfer.id]

    @property
    def ok(self) -> bool:
        accepted = all(200 <= s.status < 300 for s in self.sent)
        return accepted and self.address is not None and self.missing is None and all(c.ok for c in self.checks)


async def ensure_registered(connector: SimulatedConnector, sent: list[Sent]) -> dps.DataPlane | None:
    """The data plane registered at this control plane; when none is, the ingress's `/dataflows`, registered
    through the management API as `gxwf edc register-dataplane` would."""
    from edc_simulator.connector import Sent

    if connector.ledger.dataplanes:
        plane: dps.DataPlane = next(iter(connector.ledger.dataplanes.values()))
        return plane
    body: dict[str, Any] = {
        "dataplaneId": DATAPLANE_ID,
        "endpoint": f"{connector.ingress_url}/dataflows",
        "transferTypes": [dps.HTTP_PULL],
        "labels": ["gxwf"],
    }
    if connector.issuer is not None:
        body["authorization"] = connector.dataplane_authorization()
    response = await connector.http.put(
        connector.management_url + "/v4/dataplanes", json=body, headers={"x-api-key": connector.management_key}
    )
    sent.append(Sent("register data plane", "/api/management/v4/dataplanes", response.status_code, body["endpoint"]))
    return connector.ledger.dataplanes.get(DATAPLANE_ID)


async def dps_story(
    connector: SimulatedConnector,
    generation: dps.Generation,
    *,
    asset_id: str,
    consumer_id: str,
    callback_timeout: float = 30.0,
    terminate: bool = True,
    complete: bool = True,
) -> DpsReport:
    """Register (unless registered), start, and unless `complete` is False (the transfer stays started):
    suspend, resume, then terminate (or `completed` when `terminate` is False)."""
    transfer = connector.ledger.new_transfer(asset_id, consumer_id)
    report = DpsReport(generation, transfer, signals=connector.ledger.signals)
    plane = report.dataplane = await ensure_registered(connector, report.sent)
    if plane is None:
        report.missing = "no data plane registered"
        return report
    base = connector.signaling_url

    transfer.state = "STARTING"
    transfer.dataplane_id = plane.dataplane_id
    report.address = await _until_started(
        connector, report, plane, "start", "/start", dps.start_message(generation, transfer, base), callback_timeout
    )
    if report.address is None:
        return report
    transfer.state = "STARTED"
    connector.ledger.access[transfer.id] = report.address
    await _check(connector, report, "after start", report.address, 200)
    if not complete:
        return report

    await _send(connector, report, plane, "suspend", f"/{transfer.id}/suspend", dps.suspend_message("paused"))
    transfer.state = "SUSPENDED"
    connector.ledger.access.pop(transfer.id, None)
    await _check(connector, report, "after suspend", report.address, 401)

    resumed = await _until_started(
        connector,
        report,
        plane,
        "resume",
        f"/{transfer.id}/resume",
        dps.resume_message(generation, transfer, base),
        callback_timeout,
    )
    if resumed is None:
        return report
    report.resumed = connector.ledger.access[transfer.id] = resumed
    transfer.state = "STARTED"
    await _check(connector, report, "after resume (new token)", resumed, 200)

    if terminate:
        message = dps.terminate_message("simulated")
        await _send(connector, report, plane, "terminate", f"/{transfer.id}/terminate", message)
        transfer.state = "TERMINATED"
    else:
        message = dps.completed_message()
        await _send(connector, report, plane, "completed", f"/{transfer.id}/completed", message)
        transfer.state = "COMPLETED"
    connector.ledger.access.pop(transfer.id, None)
    await _check(connector, report, f"after {'terminate' if terminate else 'completed'}", resumed, 401)
    return report


async def _send(
    connector: SimulatedConnector, report: DpsReport, plane: dps.DataPlane, what: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    from edc_simulator.connector import Sent, _answer

    try:
        headers = await connector.dataplane_headers(plane)
    except TokenUnavailable as error:
        report.sent.append(Sent(what, path, 0, f"no token for the data plane: {error}"))
        return httpx.Response(0)
    response = await connector.http.post(plane.endpoint + path, json=body, headers=headers)
    report.sent.append(Sent(what, path, response.status_code, _answer(response)))
    return response


async def _until_started(
    connector: SimulatedConnector,
    report: DpsReport,
    plane: dps.DataPlane,
    what: str,
    path: str,
    body: dict[str, Any],
    timeout: float,
) -> tuple[str, str] | None:
    """The consumer's (endpoint, token): from a synchronous STARTED answer, or the `started` callback after a
    202 STARTING. None (and why, in the report) when neither came."""
    seen = len(connector.ledger.signals)
    response = await _send(connector, report, plane, what, path, body)
    answer = report.sent[-1].answer
    if not 200 <= response.status_code < 300:
        return None
    if isinstance(answer, dict) and answer.get("state") == "STARTED" and answer.get("dataAddress") is not None:
        address = dps.access_of(answer["dataAddress"])
        if address is None:
            report.missing = f"the {what} answer's data address holds no endpoint and token"
        return address
    callback = await connector.ledger.wait_for_signal(report.transfer.id, ("started", "errored"), seen, timeout)
    if callback is None:
        report.missing = f"no started callback within {timeout:g}s after {what}"
        return None
    if callback.kind == "errored":
        report.errored = callback
        return None
    body_ = callback.body if isinstance(callback.body, dict) else {}
    address = dps.access_of(body_.get("dataAddress"))
    if address is None:
        report.missing = f"the started callback after {what} holds no endpoint and token"
    return address


async def _check(
    connector: SimulatedConnector, report: DpsReport, moment: str, address: tuple[str, str], expected: int
) -> None:
    url = address[0].rstrip("/") + "/v1/assets"
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            response = await connector.http.get(url, headers={"authorization": f"Bearer {address[1]}"})
            status: int | None = response.status_code
        except httpx.TransportError:
            status = None
        waited = loop.time() - started
        if status == expected or waited >= CHECK_SECONDS:
            break
        await asyncio.sleep(0.1)
    report.checks.append(TokenCheck(moment, url, status, expected, round(waited, 2)))
