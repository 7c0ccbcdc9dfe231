"""A simulated provider connector: serves its HTTP side and calls an ingress the way a stock EDC does."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from edc_simulator import shapes
from edc_simulator.dps import DATAPLANE_ID, SIGNALING, SIGNALING_AUDIENCE, DataPlane
from edc_simulator.dps_auth import ProfileTokens, oauth2_profile
from edc_simulator.ledger import Callback, Ledger, Transfer
from edc_simulator.oauth2 import OAuth2Issuer, SigningKey
from edc_simulator.server import DATA_PLANE_PROVISIONING, MANAGEMENT, create_app
from edc_simulator.versions import EdcVersion


@dataclass
class Sent:
    what: str
    path: str
    status: int
    answer: Any


@dataclass
class StoryReport:
    version: str
    transfer: Transfer
    sent: list[Sent] = field(default_factory=list)
    provisioned: Callback | None = None
    deprovisioned: Callback | None = None
    # A deprovision callback instead of the provision one: the provider gave up (its error says why).
    refused: Callback | None = None


class SimulatedConnector:
    def __init__(
        self,
        version: EdcVersion,
        *,
        ingress_url: str,
        api_key: str,
        api_key_header: str = "x-api-key",
        management_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        oauth2: bool = False,
        oauth2_port: int = 0,
        dataplane_secret: str | None = None,
    ) -> None:
        """`oauth2`: Data Plane Signaling with OAuth2 both ways, through an issuer of its own (on `oauth2_port`):
        the data plane registers as its client (`dataplane_secret`, else a random one)."""
        self.version = version
        self.ingress_url = ingress_url.rstrip("/")
        self.api_key = api_key
        self.api_key_header = api_key_header
        self.management_key = management_key or secrets.token_urlsafe(24)
        self.host, self.port = host, port
        self.ledger = Ledger()
        self.url: str | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._http = httpx.AsyncClient(timeout=30)
        self.issuer = OAuth2Issuer(audience=SIGNALING_AUDIENCE, host=host, port=oauth2_port) if oauth2 else None
        self.dataplane_secret = dataplane_secret or secrets.token_urlsafe(24)
        self.tokens = ProfileTokens(self._http)
        # Sign the tokens sent to data planes with a key the issuer does not publish: what a data plane must refuse.
        self.forge_tokens = False

    # -- its own server ------------------------------------------------------------------------------------

    async def start(self) -> str:
        if self.issuer is not None:
            await self.issuer.start()
            self.issuer.add_client(DATAPLANE_ID, self.dataplane_secret)
        app = create_app(self.ledger, self.version, management_key=self.management_key)
        # IPPROTO_TCP given, or asyncio leaves TCP_NODELAY off and each answer waits for a delayed ACK.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(256)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", server_header=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[listener]), name="edc-simulator")
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        self.url = f"http://{self.host}:{listener.getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        await self._http.aclose()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.issuer is not None:
            await self.issuer.stop()

    # -- Data Plane Signaling with OAuth2 ------------------------------------------------------------------

    def dataplane_authorization(self) -> dict[str, Any]:
        """The `authorization` of the data plane's registration: how this control plane gets tokens for its
        messages to it, and checks the tokens on its callbacks."""
        issuer = self._issuer()
        return {
            "type": "oauth2_client_credentials",
            "tokenEndpoint": issuer.token_url,
            "clientId": DATAPLANE_ID,
            "clientSecret": self.dataplane_secret,
            "jwksUri": issuer.jwks_url,
        }

    def oauth2_settings(self) -> dict[str, str]:
        """What the data plane's connector entry needs for this control plane, in both directions: its tokens
        are verified against the issuer's JWKS (iss, aud, sub), and its callbacks carry the data plane's own
        token from the issuer's token endpoint (whose `sub`, the client id, is the registered data plane id)."""
        issuer = self._issuer()
        return {
            "jwks_url": issuer.jwks_url,
            "token_issuer": issuer.issuer,
            "token_audience": issuer.audience,
            "token_subject": DATAPLANE_ID,
            "token_url": issuer.token_url,
            "client_id": DATAPLANE_ID,
            "client_secret": self.dataplane_secret,
        }

    async def dataplane_headers(self, plane: DataPlane) -> dict[str, str]:
        """How a message to the data plane authenticates: a bearer token when the plane registered an OAuth2
        profile (as EDC does), else the connector's API key."""
        profile = oauth2_profile(plane.authorization)
        if profile is None:
            return {self.api_key_header: self.api_key}
        if self.forge_tokens and self.issuer is not None:
            forged = OAuth2Issuer(audience=self.issuer.audience, keys=[SigningKey.generate()])
            forged.url = self.issuer.issuer  # claims as the real issuer's; signed with a key it never published
            return {"Authorization": f"Bearer {forged.issue(DATAPLANE_ID)}"}
        return {"Authorization": f"Bearer {await self.tokens.token(profile)}"}

    def _issuer(self) -> OAuth2Issuer:
        if self.issuer is None or self.issuer.url is None:
            raise RuntimeError("start a simulator made with oauth2=True first")
        return self.issuer

    @property
    def management_url(self) -> str:
        return f"{self._url()}{MANAGEMENT}"

    @property
    def callback_address(self) -> str:
        """What this connector puts in its provision requests, per generation."""
        if self.version.provisioner == "data-plane":
            return f"{self._url()}{DATA_PLANE_PROVISIONING}"
        return f"{self._url()}{MANAGEMENT}/callback"

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http

    @property
    def signaling_url(self) -> str:
        """The base of this control plane's Data Plane Signaling callbacks."""
        return f"{self._url()}{SIGNALING}"

    def _url(self) -> str:
        if self.url is None:
            raise RuntimeError("start the simulator first")
        return self.url

    # -- what it sends -------------------------------------------------------------------------------------

    async def send_event(self, body: dict[str, Any], sent: list[Sent] | None = None) -> httpx.Response:
        """Event callbacks carry the key in a header (`edc.callback.<name>.auth-key` / `auth-code-id`)."""
        response = await self._http.post(
            f"{self.ingress_url}/edc/events", json=body, headers={self.api_key_header: self.api_key}
        )
        if sent is not None:
            sent.append(Sent(body["type"], "/edc/events", response.status_code, _answer(response)))
        return response

    async def send_provisioner_request(
        self, transfer: Transfer, action: str = "provision", sent: list[Sent] | None = None
    ) -> httpx.Response:
        """Stock provisioners send no headers: the key rides in the configured endpoint URL's query."""
        body = shapes.provision_request(self.version, transfer, self.callback_address, action)
        path = "/edc/dataplane/provision" if self.version.provisioner == "data-plane" else "/edc/provisioner"
        response = await self._http.post(
            f"{self.ingress_url}{path}", json=body, params={self.api_key_header: self.api_key}
        )
        if sent is not None:
            what = f"{action} request" + ("" if self.version.typed_requests else " (untyped)")
            sent.append(Sent(what, path, response.status_code, _answer(response)))
        return response

    async def story(
        self,
        *,
        asset_id: str,
        consumer_id: str,
        resend: int = 1,
        callback_timeout: float = 30.0,
        terminate: bool = False,
        complete: bool = True,
    ) -> StoryReport:
        """One transfer as a provider connector lives it: agreement, provisioning (re-sent while waiting),
        start, then (unless `complete` is False: the transfer stays started) completion or termination and
        deprovisioning."""
        transfer = self.ledger.new_transfer(asset_id, consumer_id)
        report = StoryReport(self.version.name, transfer)
        await self.send_event(shapes.negotiation_event(self.version, transfer.agreement), report.sent)
        transfer.state = "PROVISIONING"
        await self.send_event(shapes.transfer_event(self.version, transfer, "TransferProcessInitiated"), report.sent)
        await self.send_event(
            shapes.transfer_event(self.version, transfer, "TransferProcessProvisioningRequested"), report.sent
        )
        for _ in range(1 + resend):
            await self.send_provisioner_request(transfer, "provision", report.sent)
        # A provider that cannot provision answers with a deprovision callback carrying its error: stop there.
        answer = await self.ledger.wait_for(transfer.id, ("provision", "deprovision"), callback_timeout)
        if answer is None or answer.action == "deprovision":
            report.refused = answer
            return report
        report.provisioned = answer
        await self.send_event(shapes.transfer_event(self.version, transfer, "TransferProcessProvisioned"), report.sent)
        transfer.state = "STARTED"
        await self.send_event(shapes.transfer_event(self.version, transfer, "TransferProcessStarted"), report.sent)
        if not complete:
            return report
        if terminate:
            transfer.state = "TERMINATED"
            event = shapes.transfer_event(self.version, transfer, "TransferProcessTerminated", reason="simulated")
        else:
            transfer.state = "COMPLETED"
            event = shapes.transfer_event(self.version, transfer, "TransferProcessCompleted")
        await self.send_event(event, report.sent)
        transfer.state = "DEPROVISIONING"
        await self.send_provisioner_request(transfer, "deprovision", report.sent)
        report.deprovisioned = await self.ledger.wait_for(transfer.id, "deprovision", callback_timeout)
        return report


def _answer(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
