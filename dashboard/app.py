"""The dashboard's HTTP app: server-rendered pages, the SSE tail, a small JSON API, one admin action."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from dashboard import delivery, health, overview, timeline
from dashboard.access import (
    Admin,
    Forbidden,
    Guard,
    LoginThrottle,
    Reader,
    Unauthorized,
    local_target,
    set_session,
    wants_html,
)
from dashboard.auth import COOKIE, Role, Sessions, Tokens
from dashboard.formatting import install_filters, timestamp
from dashboard.problems import PROBLEM_JSON, Problem, invalid, not_found
from dashboard.run_log import read_log
from dashboard.tail import TailClient, TailHub
from events.filters import EventFilter, FilterError, StartAt, parse_last_event_id, parse_since
from events.redaction import redact
from http_serving.body_limit import BodyLimit
from http_serving.problems import ProblemDetails, install_problem_handlers
from http_serving.sse import EventStream
from ports.logs import LogReader
from ports.objects import ObjectStore
from ports.queries import OpsQueries
from schemas.sites import Site

HERE = Path(__file__).parent
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")


@dataclass
class Dashboard:
    """What the pages read: the bus, the store's read models (ports.queries), the log stream (ports.logs), the object
    store, and the sites."""

    tokens: Tokens
    nc: Client
    js: JetStreamContext
    queries: OpsQueries
    objects: ObjectStore | None
    bucket: str
    sites: Sequence[Site]
    hub: TailHub
    # The log stream, read as the WorkflowApi reads it.
    logs: LogReader
    monitor_url: str | None = None
    runs_dir: Path | None = None
    # Runs a site admits at once (pending or running), for the overview's capacity column.
    runs_per_site: int | None = None
    sessions: Sessions = field(default_factory=Sessions)
    logins: LoginThrottle = field(default_factory=LoginThrottle)


def _check_id(field: str, value: str) -> str:
    if not _ID.match(value):
        raise invalid(field, "letters, digits and . _ : @ - only, at most 200 characters")
    return value


def create_app(dash: Dashboard) -> FastAPI:
    app = FastAPI(title="gaiax-workflows ops dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.dashboard = dash
    templates = Jinja2Templates(directory=HERE / "templates")
    install_filters(templates)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(request: Request, name: str, role: Role, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(
            request, name, {"role": role.name.lower(), "admin": role is Role.ADMIN, **context}, status_code=status
        )

    async def on_problem(request: Request, problem: ProblemDetails) -> Response:
        """A browser is shown the problem as a page, anyone else gets it as problem+json."""
        if wants_html(request):
            return templates.TemplateResponse(
                request, "error.html", {"problem": problem, "role": None}, status_code=problem.status
            )
        return problem.response(request.url.path)

    install_problem_handlers(app, service="dashboard", render=on_problem)

    @app.exception_handler(Unauthorized)
    async def on_unauthorized(request: Request, _: Unauthorized) -> Response:
        headers = {"WWW-Authenticate": 'Bearer realm="gxwf-dashboard"'}
        if wants_html(request):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return templates.TemplateResponse(
                request, "login.html", {"next": target, "role": None, "failed": False}, status_code=401, headers=headers
            )
        problem = Problem(
            401,
            "unauthorized",
            "Unauthorized",
            "a dashboard token is needed (Authorization: Bearer ...)",
            headers=headers,
        )
        return problem.response(request.url.path)

    @app.exception_handler(Forbidden)
    async def on_forbidden(request: Request, _: Forbidden) -> Response:
        return Problem(
            403, "forbidden", "Forbidden", "this needs the admin token (GXWF_DASHBOARD_ADMIN_TOKEN)"
        ).response(request.url.path)

    @app.exception_handler(FilterError)
    async def on_filter_error(request: Request, error: FilterError) -> Response:
        return await on_problem(request, invalid(error.field, error.message))

    async def token_once(request: Request, token: str) -> Response:
        try:
            dash.logins.attempt(request)
        except Problem as refused:
            return await on_problem(request, refused)
        role = dash.tokens.role_of(token)
        if role is None:
            dash.logins.failed(request)
            return await on_unauthorized(request, Unauthorized())
        # The token leaves the address bar (and the history) at once; the cookie carries the session.
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        redirect = RedirectResponse(request.url.path + (f"?{urlencode(rest)}" if rest else ""), status_code=303)
        set_session(redirect, request, dash.sessions.start(role), dash.sessions.lifetime_seconds)
        return redirect

    app.add_middleware(Guard, token_once=token_once)
    # Outermost, before the login form is parsed: nothing here takes more than a small form or JSON body.
    app.add_middleware(BodyLimit)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """For probes (no token): NATS connected, MongoDB answering, the shared feed running."""
        checks = {
            "nats": "ok" if dash.nc.is_connected else "disconnected",
            "mongo": await dash.queries.health(),
            "feed": "ok" if dash.hub.feed.running else "stopped",
        }
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, next: str = "/tail") -> HTMLResponse:
        return templates.TemplateResponse(
            request, "login.html", {"next": local_target(next), "role": None, "failed": False}
        )

    @app.post("/login")
    async def login(
        request: Request,
        token: Annotated[str, Form(max_length=500)],
        next: Annotated[str, Form(max_length=2000)] = "/tail",
    ) -> Response:
        dash.logins.attempt(request)
        role = dash.tokens.role_of(token)
        if role is None:
            dash.logins.failed(request)
            return templates.TemplateResponse(
                request, "login.html", {"next": local_target(next), "role": None, "failed": True}, status_code=401
            )
        response = RedirectResponse(local_target(next), status_code=303)
        set_session(response, request, dash.sessions.start(role), dash.sessions.lifetime_seconds)
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        # The session ends here, not only in this browser: the cookie, if kept or copied, is refused from now on.
        dash.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/")
    async def index(role: Reader) -> Response:
        return RedirectResponse("/tail", status_code=303)

    def _filter(
        subject: list[str], consumer: str | None, transfer: str | None, run: str | None, text: str | None
    ) -> EventFilter:
        patterns = [part for value in subject for part in re.split(r"[\s,]+", value) if part]
        return EventFilter.build(patterns, consumer=consumer, transfer=transfer, run=run, text=text)

    @app.get("/tail", response_class=HTMLResponse)
    async def tail_page(
        request: Request,
        role: Reader,
        subject: Annotated[list[str] | None, Query()] = None,
        consumer: str | None = None,
        transfer: str | None = None,
        run: str | None = None,
        text: str | None = None,
        since: str | None = None,
    ) -> HTMLResponse:
        flt = _filter(subject or [], consumer, transfer, run, text)
        parse_since(since)
        query = flt.query() + ([("since", since)] if since else [])
        return page(
            request,
            "tail.html",
            role,
            filter=flt,
            since=since or "",
            stream_url=f"/api/events/stream?{urlencode(query)}",
        )

    @app.get("/api/events/stream")
    async def events_stream(
        request: Request,
        role: Reader,
        subject: Annotated[list[str] | None, Query()] = None,
        consumer: str | None = None,
        transfer: str | None = None,
        run: str | None = None,
        text: str | None = None,
        since: str | None = None,
        last_event_id: Annotated[str | None, Query(alias="lastEventId")] = None,
    ) -> Response:
        flt = _filter(subject or [], consumer, transfer, run, text)
        header = request.headers.get("last-event-id")
        last = parse_last_event_id(
            header if header else last_event_id, field="Last-Event-ID" if header else "lastEventId"
        )
        start = StartAt(sequence=last + 1) if last is not None else parse_since(since)
        if dash.hub.full:
            raise Problem(
                503, "too-many-tails", "Too many live tails", f"{dash.hub.max_clients} tails are open already"
            )
        client = TailClient(flt)
        try:
            body = await dash.hub.open(client, start)
        except NotFoundError:
            raise Problem(
                503, "no-stream", "Stream missing", "stream WF does not exist yet: start the handlers"
            ) from None
        return EventStream(body, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}, ping=None)

    @app.get("/transfers", response_class=HTMLResponse)
    async def transfers(request: Request, role: Reader) -> HTMLResponse:
        rows = await timeline.recent_transfers(dash.queries)
        return page(request, "transfers.html", role, transfers=rows)

    @app.get("/transfers/{transfer_id}", response_class=HTMLResponse)
    async def transfer_page(request: Request, role: Reader, transfer_id: str) -> HTMLResponse:
        found = await timeline.transfer_timeline(dash.queries, _check_id("transfer_id", transfer_id))
        if found is None:
            raise not_found(f"no transfer {transfer_id} was provisioned here")
        return page(request, "timeline.html", role, timeline=found)

    @app.get("/api/transfers/{transfer_id}/timeline")
    async def transfer_json(role: Reader, transfer_id: str) -> JSONResponse:
        found = await timeline.transfer_timeline(dash.queries, _check_id("transfer_id", transfer_id))
        if found is None:
            raise not_found(f"no transfer {transfer_id} was provisioned here")
        return JSONResponse(
            {
                "transfer_id": found.transfer_id,
                "state": found.state,
                "phases": [
                    {
                        "key": p.key,
                        "title": p.title,
                        "status": p.status,
                        "entries": [{**asdict(e), "at": timestamp(e.at)} for e in p.entries],
                        "links": [{"label": label, "href": href} for label, href in p.links],
                    }
                    for p in found.phases
                ],
            }
        )

    @app.get("/runs/{run_id}/log", response_class=PlainTextResponse)
    async def run_log(role: Reader, run_id: str) -> PlainTextResponse:
        found = await read_log(
            _check_id("run_id", run_id),
            queries=dash.queries,
            objects=dash.objects,
            runs_dir=dash.runs_dir,
            logs=dash.logs,
        )
        if found is None:
            raise not_found(f"no log of run {run_id} here (archived or live)")
        text, source = found
        return PlainTextResponse(text, headers={"X-Gxwf-Log": source})

    @app.get("/runs/{run_id}/result")
    async def run_result(role: Reader, run_id: str) -> JSONResponse:
        doc = await dash.queries.result(_check_id("run_id", run_id))
        if doc is None:
            raise not_found(f"no result of run {run_id} yet")
        return JSONResponse(redact({k: timestamp(v) if isinstance(v, datetime) else v for k, v in doc.items()}))

    @app.get("/overview", response_class=HTMLResponse)
    async def overview_page(request: Request, role: Reader) -> HTMLResponse:
        found = await overview.overview(dash.queries, dash.sites)
        return page(
            request,
            "overview.html",
            role,
            overview=found,
            run_states=overview.RUN_STATES,
            runs_per_site=dash.runs_per_site,
        )

    @app.get("/delivery", response_class=HTMLResponse)
    async def delivery_page(
        request: Request, role: Reader, before: Annotated[int | None, Query(ge=1)] = None
    ) -> HTMLResponse:
        letters, total = await delivery.dead_letters(dash.js, before=before)
        servers = [
            await health.nats_health(dash.nc, dash.monitor_url),
            await health.mongo_health(dash.queries),
            await health.s3_health(dash.objects, dash.bucket),
        ]
        return page(
            request,
            "delivery.html",
            role,
            consumers=await delivery.consumers(dash.js),
            letters=letters,
            total=total,
            servers=servers,
            tails=len(dash.hub.clients),
        )

    @app.get("/api/dead-letters")
    async def dead_letters_json(
        role: Reader,
        before: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> JSONResponse:
        letters, total = await delivery.dead_letters(dash.js, before=before, limit=limit)
        return JSONResponse(
            {
                "total": total,
                "items": [
                    {"sequence": item.sequence, "subject": item.subject, "at": timestamp(item.at), "record": item.shown}
                    for item in letters
                ],
            }
        )

    @app.post("/api/dead-letters/{sequence}/republish")
    async def republish(role: Admin, sequence: str) -> JSONResponse:
        if not sequence.isdigit() or len(sequence) > 19 or int(sequence) < 1:
            raise invalid("sequence", "a dead letter's stream sequence (a positive integer)")
        try:
            done = await delivery.republish(dash.js, int(sequence))
        except delivery.DeadLetterProblem as problem:
            slug = "not-found" if problem.status == 404 else "not-republishable"
            raise Problem(problem.status, slug, "Cannot re-publish", problem.detail) from None
        return JSONResponse(asdict(done))

    @app.get("/api/health")
    async def health_json(role: Reader) -> JSONResponse:
        servers = [
            await health.nats_health(dash.nc, dash.monitor_url),
            await health.mongo_health(dash.queries),
            await health.s3_health(dash.objects, dash.bucket),
        ]
        body = {s.name: {"status": s.status, **s.facts} for s in servers}
        return JSONResponse(body, status_code=200 if all(s.ok for s in servers) else 503)

    return app


__all__ = ["PROBLEM_JSON", "Dashboard", "create_app"]
