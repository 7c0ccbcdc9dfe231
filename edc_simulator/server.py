"""The simulated connector's HTTP side: its management API (from the ledger) and its provisioner callbacks."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from edc_simulator import dps, shapes
from edc_simulator.dps_auth import oauth2_profile, refusal
from edc_simulator.ledger import Callback, Ledger
from edc_simulator.versions import EdcVersion
from http_serving.problems import install_problem_handlers

MANAGEMENT = "/api/management"
DATA_PLANE_PROVISIONING = "/provisioning"


def _edc_error(status: int, message: str) -> JSONResponse:
    # EDC's error body: a list of {message, type, path, invalidValue}
    kind = {404: "ObjectNotFound", 409: "ObjectConflict"}.get(status, "NotAuthorized")
    return JSONResponse([{"message": message, "type": kind}], status)


def create_app(ledger: Ledger, version: EdcVersion, *, management_key: str, key_header: str = "x-api-key") -> FastAPI:
    app = FastAPI(title=f"EDC {version.name} simulator", docs_url=None, redoc_url=None)
    # What EDC answers is answered in EDC's error format (_edc_error); what only the framework knows (no such
    # route, wrong method, an unexpected error) is a problem, as with every other service here.
    install_problem_handlers(app, service="EDC simulator")

    def authorized(request: Request) -> bool:
        presented = request.headers.get(key_header, "")
        return hmac.compare_digest(presented.encode(), management_key.encode())

    @app.get(f"{MANAGEMENT}/{version.management_path}/transferprocesses/{{tp}}")
    async def transfer_process(tp: str, request: Request) -> Response:
        if not authorized(request):
            return _edc_error(401, "Request could not be authenticated")
        transfer = ledger.transfers.get(tp)
        if transfer is None:
            return _edc_error(404, f"Object of type TransferProcess with ID={tp} was not found")
        return JSONResponse(shapes.management_transfer(version, transfer))

    @app.get(f"{MANAGEMENT}/{version.management_path}/contractagreements/{{agreement_id}}")
    async def contract_agreement(agreement_id: str, request: Request) -> Response:
        if not authorized(request):
            return _edc_error(401, "Request could not be authenticated")
        agreement = ledger.agreements.get(agreement_id)
        if agreement is None:
            return _edc_error(404, f"Object of type ContractAgreement with ID={agreement_id} was not found")
        return JSONResponse(shapes.management_agreement(version, agreement))

    @app.put(f"{MANAGEMENT}/v4/dataplanes")
    async def register_dataplane(request: Request) -> Response:
        """EDC 0.18+: an external data plane registers itself; the same id again replaces it."""
        if not authorized(request):
            return _edc_error(401, "Request could not be authenticated")
        body = await _json(request)
        plane = dps.registration(body)
        if isinstance(plane, str) or not isinstance(body, dict):
            return JSONResponse([{"message": str(plane), "type": "ValidationFailure"}], 400)
        ledger.dataplane_puts.append(body)
        ledger.dataplanes[plane.dataplane_id] = plane
        # 200 with no body, as EDC answers (DataPlaneRegistrationApiV4Controller.register: Response.ok()).
        return Response(status_code=200)

    @app.get("/sim/dataplanes")
    async def registered_dataplanes() -> dict[str, Any]:
        return {name: plane.body for name, plane in ledger.dataplanes.items()}

    @app.post(MANAGEMENT + "/callback/{tp}/{action}")
    async def control_plane_callback(tp: str, action: str, request: Request) -> Response:
        body = await _json(request)
        ok = authorized(request)
        known = tp in ledger.transfers and action in ("provision", "deprovision")
        resource = body.get("resourceDefinitionId") if isinstance(body, dict) else None
        bearer = request.headers.get("authorization")
        await ledger.record(Callback("control-plane", action, tp, resource, body, ok and known, authorization=bearer))
        if not ok:
            return _edc_error(401, "Request could not be authenticated")
        if not known:
            return _edc_error(404, f"Object of type TransferProcess with ID={tp} was not found")
        return Response(status_code=204)

    @app.post(DATA_PLANE_PROVISIONING + "/{flow}/{resource}/{action}")
    async def data_plane_callback(flow: str, resource: str, action: str, request: Request) -> Response:
        body = await _json(request)
        known = flow in ledger.transfers and action in ("provision", "deprovision")
        bearer = request.headers.get("authorization")
        await ledger.record(Callback("data-plane", action, flow, resource, body, known, authorization=bearer))
        if not known:
            return _edc_error(404, f"Object of type DataFlow with ID={flow} was not found")
        return Response(status_code=204)

    @app.get(f"{MANAGEMENT}/v4/dataplanes")
    async def dataplanes(request: Request) -> Response:
        if not authorized(request):
            return _edc_error(401, "Request could not be authenticated")
        return JSONResponse([p.body for p in ledger.dataplanes.values()])

    @app.post(dps.SIGNALING + "/transfers/{tp}/dataflow/{kind}")
    async def signaling_callback(tp: str, kind: str, request: Request) -> Response:
        body = await _json(request)
        authorization = request.headers.get("authorization")
        refused = await _refusal(ledger, tp, authorization)
        if refused is not None:
            status = 401
        elif tp not in ledger.transfers or kind not in dps.CALLBACK_KINDS:
            status = 404
        elif ledger.conflict_once(tp):
            status = 409
        else:
            status = 204
        await ledger.signal(dps.SignalingCallback(tp, kind, body, status, authorization, refused=refused))
        if status == 401:
            return _edc_error(401, "Not authorized")
        if status == 404:
            return _edc_error(404, f"Object of type TransferProcess with ID={tp} was not found")
        if status == 409:
            return _edc_error(409, f"TransferProcess {tp} is being processed: retry")
        return Response(status_code=204)

    @app.get("/sim/callbacks")
    async def callbacks() -> list[dict[str, Any]]:
        return [dataclasses.asdict(c) for c in ledger.callbacks]

    @app.get("/sim/signals")
    async def signals() -> list[dict[str, Any]]:
        return [dataclasses.asdict(c) for c in ledger.signals]

    @app.get("/sim/transfers")
    async def transfers() -> list[dict[str, Any]]:
        return [dataclasses.asdict(t) for t in ledger.transfers.values()]

    return app


async def _refusal(ledger: Ledger, tp: str, authorization: str | None) -> str | None:
    """Why the callback is not authorized: the transfer's data plane registered an OAuth2 profile and the
    callback's token does not satisfy it (EDC's DataPlaneTransferAuthorizationFilter); None when accepted."""
    transfer = ledger.transfers.get(tp)
    plane = ledger.dataplanes.get(transfer.dataplane_id) if transfer is not None and transfer.dataplane_id else None
    profile = oauth2_profile(plane.authorization) if plane is not None else None
    if plane is None or profile is None:
        return None
    async with httpx.AsyncClient(timeout=5) as http:
        return await refusal(http, profile, authorization, plane.dataplane_id)


async def _json(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    try:
        return await request.json()
    except ValueError:
        return raw.decode("utf-8", "replace")
