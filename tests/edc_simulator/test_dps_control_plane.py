"""The simulator as a Data Plane Signaling control plane (EDC 0.18 and main), against a minimal DPS data plane
stand-in: the messages it sends in each generation's shape, the callbacks it serves and records (a 409 once, so
the data plane retries), and the consumer's token as each step leaves it."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from edc_simulator import dps
from edc_simulator.connector import SimulatedConnector
from edc_simulator.dps_story import dps_story
from edc_simulator.versions import version
from http_serving.server import Served, free_port
from tests.edc_fixtures import KEY as INGRESS_KEY

KEY = "standin-key-0123456789"
# Every field a control plane puts in a start message, whatever its generation.
START_FIELDS = {
    "messageId",
    "participantId",
    "counterPartyId",
    "dataspaceContext",
    "processId",
    "agreementId",
    "datasetId",
    "labels",
    "metadata",
    "claims",
    "callbackAddress",
}


@dataclass
class StandIn:
    """A DPS data plane as small as the spec allows: start answers 202 STARTING and calls `started` back (again
    on 409), resume answers 200 STARTED at once; its `/v1/assets` opens only to the current token."""

    signaling: str
    url: str = ""
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    callbacks: list[tuple[str, int]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def address(self, process: str) -> dict[str, Any]:
        self.tokens[process] = secrets.token_urlsafe(16)
        return {
            "@type": "DataAddress",
            "endpointType": dps.PULL_PROFILE,
            "endpoint": self.url,
            "endpointProperties": [
                {"@type": "EndpointProperty", "name": "authorization", "value": self.tokens[process]},
                {"@type": "EndpointProperty", "name": "authType", "value": "bearer"},
            ],
        }

    async def call_back(self, base: str, process: str) -> None:
        body = {"messageId": str(uuid.uuid4()), "dataFlowId": process, "state": "STARTED"}
        body["dataAddress"] = self.address(process)
        async with httpx.AsyncClient() as http:
            for _ in range(5):
                url = f"{base}/transfers/{process}/dataflow/started"
                status = (await http.post(url, json=body)).status_code
                self.callbacks.append((url, status))
                if status != 409:
                    return
                await asyncio.sleep(0.05)

    def app(self) -> FastAPI:
        app = FastAPI()

        def authorized(request: Request) -> bool:
            return request.headers.get("x-api-key") == KEY

        @app.post("/dataflows/start")
        async def start(request: Request) -> Response:
            body = await request.json()
            self.received.append(("start", body))
            if not authorized(request):
                return Response(status_code=401)
            base = body.get("callbackAddress") or self.signaling
            task = asyncio.create_task(self.call_back(base, body["processId"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            answer = {"dataplaneId": "standin", "state": "STARTING"}
            return JSONResponse(answer, 202, headers={"Location": f"/dataflows/{body['processId']}"})

        @app.post("/dataflows/{process}/{what}")
        async def transition(process: str, what: str, request: Request) -> Response:
            body = await request.json()
            self.received.append((what, body))
            if not authorized(request):
                return Response(status_code=401)
            if what == "resume":
                return JSONResponse(
                    {"dataplaneId": "standin", "state": "STARTED", "dataAddress": self.address(process)}
                )
            self.tokens.pop(process, None)
            state = {"suspend": "SUSPENDED", "terminate": "TERMINATED"}.get(what, "COMPLETED")
            return JSONResponse({"dataplaneId": "standin", "state": state})

        @app.get("/v1/assets")
        async def assets(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            return JSONResponse([]) if token and token in self.tokens.values() else Response(status_code=401)

        return app


@pytest.fixture
async def simulator() -> AsyncIterator[SimulatedConnector]:
    sim = SimulatedConnector(version("0.18"), ingress_url="http://127.0.0.1:9", api_key=KEY)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def standin(simulator: SimulatedConnector) -> AsyncIterator[StandIn]:
    plane = StandIn(simulator.signaling_url)
    served = Served("dps-standin", "127.0.0.1", 0)
    plane.url = await served.start(plane.app())
    simulator.ingress_url = plane.url
    yield plane
    await served.stop()


@pytest.mark.parametrize("generation", dps.GENERATIONS)
async def test_a_dps_story_in_each_generations_shapes(
    simulator: SimulatedConnector, standin: StandIn, generation: dps.Generation
) -> None:
    simulator.ledger.conflict_first = True
    report = await dps_story(
        simulator, generation, asset_id="carla-minimal", consumer_id="did:web:consumer.example", callback_timeout=5
    )
    assert report.ok, report
    # Nothing was registered: the simulator registered `{ingress}/dataflows` at its own management API.
    assert report.sent[0].what == "register data plane" and report.sent[0].status == 200
    plane = simulator.ledger.dataplanes["gxwf-dataplane"]
    assert plane.endpoint == f"{standin.url}/dataflows" and plane.transfer_types == ["HttpData-PULL"]

    assert [what for what, _ in standin.received] == ["start", "suspend", "resume", "terminate"]
    start = standin.received[0][1]
    tp = report.transfer
    assert set(start) >= START_FIELDS
    assert start["processId"] == tp.id and start["agreementId"] == tp.agreement.id
    assert start["datasetId"] == "carla-minimal" and start["counterPartyId"] == "did:web:consumer.example"
    if generation == "0.18":
        assert start["transferType"] == "HttpData-PULL" and "profile" not in start
        assert start["callbackAddress"] == simulator.signaling_url
    else:
        assert start["profile"] == "HttpData-PULL" and "transferType" not in start
        assert start["callbackAddress"] is None
    # Suspend and terminate name the process in the path; the body carries the reason.
    assert standin.received[1][1] == {"reason": "paused"} and standin.received[3][1] == {"reason": "simulated"}
    assert standin.received[2][1]["processId"] == tp.id  # resume: the start message's fields again

    # The first `started` callback was answered 409, the retry 204; both recorded at the signaling path.
    started = f"{simulator.signaling_url}/transfers/{tp.id}/dataflow/started"
    assert standin.callbacks == [(started, 409), (started, 204)]
    assert [(c.kind, c.status) for c in report.callbacks] == [("started", 409), ("started", 204)]

    moments = [(c.moment, c.status) for c in report.checks]
    assert moments == [
        ("after start", 200),
        ("after suspend", 401),
        ("after resume (new token)", 200),
        ("after terminate", 401),
    ]
    assert report.address is not None and report.resumed is not None and report.address[1] != report.resumed[1]


async def test_the_registered_data_plane_is_the_one_driven(simulator: SimulatedConnector, standin: StandIn) -> None:
    simulator.ingress_url = "http://127.0.0.1:9"  # not asked: the registration says where the data plane is
    management = httpx.AsyncClient(base_url=simulator.management_url, headers={"x-api-key": simulator.management_key})
    async with management:
        body = {"dataplaneId": "dp-1", "endpoint": f"{standin.url}/dataflows", "transferTypes": ["HttpData-PULL"]}
        assert (await management.put("/v4/dataplanes", json=body)).status_code == 200
        assert (await management.get("/v4/dataplanes")).json() == [body]
        bad = await management.put("/v4/dataplanes", json={"dataplaneId": "dp-2", "endpoint": "ftp://x"})
        assert bad.status_code == 400 and "endpoint" in bad.json()[0]["message"]
        assert (await management.put("/v4/dataplanes", json=body, headers={"x-api-key": "wrong"})).status_code == 401
    report = await dps_story(
        simulator, "main", asset_id="a", consumer_id="c", callback_timeout=5, terminate=False, complete=True
    )
    assert report.ok, report
    assert report.sent[0].what == "start"
    assert [what for what, _ in standin.received][-1] == "completed"


async def test_callbacks_for_unknown_transfers_or_kinds_are_refused(simulator: SimulatedConnector) -> None:
    async with httpx.AsyncClient(base_url=simulator.signaling_url) as http:
        unknown = await http.post("/transfers/nope/dataflow/started", json={"state": "STARTED"})
        assert unknown.status_code == 404
        tp = simulator.ledger.new_transfer("a", "c").id
        assert (await http.post(f"/transfers/{tp}/dataflow/provisioned", json={})).status_code == 404
        assert (await http.post(f"/transfers/{tp}/dataflow/errored", json={"error": "x"})).status_code == 204
    assert [(c.kind, c.status) for c in simulator.ledger.signals] == [
        ("started", 404),
        ("provisioned", 404),
        ("errored", 204),
    ]


async def test_an_errored_callback_ends_the_story_with_its_reason(simulator: SimulatedConnector) -> None:
    async def refuse(request: Request) -> Response:
        body = await request.json()
        async with httpx.AsyncClient() as http:
            url = f"{body['callbackAddress']}/transfers/{body['processId']}/dataflow/errored"
            await http.post(url, json={"dataFlowId": body["processId"], "state": "TERMINATED", "error": "no site"})
        return JSONResponse({"state": "STARTING"}, 202)

    app = FastAPI()
    app.add_api_route("/dataflows/start", refuse, methods=["POST"])
    served = Served("dps-refusing", "127.0.0.1", 0)
    simulator.ingress_url = await served.start(app)
    try:
        report = await dps_story(simulator, "0.18", asset_id="a", consumer_id="c", callback_timeout=5)
    finally:
        await served.stop()
    assert not report.ok and report.errored is not None and report.errored.body["error"] == "no site"


# -- the command -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("generation", dps.GENERATIONS)
async def test_simulate_command_tells_the_dps_story(generation: str, tmp_path: Path) -> None:
    port = free_port()
    plane = StandIn(f"http://127.0.0.1:{port}{dps.SIGNALING}")
    served = Served("dps-standin", "127.0.0.1", 0)
    plane.url = await served.start(plane.app())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    args = ["--version", generation, "--ingress", plane.url, "--api-key", KEY, "--port", str(port)]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gxwf",
            "edc",
            "simulate",
            *args,
            "--conflict-first-callback",
            "--callback-timeout",
            "10",
            "--state-dir",
            str(tmp_path),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await served.stop()
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert f"EDC {generation} (Data Plane Signaling): transfer " in text
    assert f"data plane gxwf-dataplane at {plane.url}/dataflows" in text
    assert f"signaling callbacks served at http://127.0.0.1:{port}/api/signaling" in text
    # Without --terminate the transfer ends `completed`.
    for row in ("register data plane", "start", "suspend", "resume", "completed"):
        assert row in text, text
    assert [what for what, _ in plane.received] == ["start", "suspend", "resume", "completed"]
    assert "callback received: started (STARTED), answered 409" in text
    assert "callback received: started (STARTED), answered 204" in text
    assert f"data address (started): {plane.url} (bearer: " in text
    assert "token after suspend: GET " in text and "-> 401 (expected 401," in text
    assert "token after resume (new token): GET " in text
    # The story's tokens are not printed: only their length.
    assert not any(token in text for token in plane.tokens.values())


async def test_an_ingress_without_dataflows_is_named(tmp_path: Path) -> None:
    # An ingress of a release before Data Plane Signaling: it serves its other routes, not /dataflows.
    older = FastAPI()
    older.add_api_route("/provisioning", lambda: {}, methods=["POST"])
    served = Served("older-ingress", "127.0.0.1", 0)
    url = await served.start(older)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    args = ["--version", "main", "--ingress", url, "--api-key", INGRESS_KEY, "--state-dir", str(tmp_path)]
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gxwf", "edc", "simulate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        await served.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{url}/dataflows/start answered 404: no Data Plane Signaling endpoint there" in done.stdout
    assert "Traceback" not in done.stderr


async def test_keep_access_stops_after_start_and_writes_the_profile(tmp_path: Path) -> None:
    port = free_port()
    plane = StandIn(f"http://127.0.0.1:{port}{dps.SIGNALING}")
    served = Served("dps-standin", "127.0.0.1", 0)
    plane.url = await served.start(plane.app())
    env = {k: v for k, v in os.environ.items() if not k.startswith("GXWF_")} | {"COLUMNS": "250"}
    args = ["--version", "main", "--ingress", plane.url, "--api-key", KEY, "--port", str(port), "--keep-access"]
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "gxwf", "edc", "simulate", *args, "--state-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        await served.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [what for what, _ in plane.received] == ["start"]
    profile = tmp_path / "simulated-consumer.json"
    assert json.loads(profile.read_text()) == {"url": plane.url, "token": next(iter(plane.tokens.values()))}
    assert profile.stat().st_mode & 0o777 == 0o600
