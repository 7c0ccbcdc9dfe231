"""The dashboard over plain HTTP: access, bad input, the SSE tail's resume, timelines and dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
from nats.js import JetStreamContext

from adapters.jetstream_logs import JetStreamLogSink
from adapters.mongo_store import MongoStateStore
from gxwf.settings import Settings
from tests.dashboard.conftest import (
    ADMIN,
    OPERATOR,
    bearer,
    events_of,
    make_dashboard,
    publish_run_requested,
    read_sse,
    tail_open,
)

if TYPE_CHECKING:
    from dashboard.service import DashboardService
    from devstack import StackEndpoints


async def test_without_a_token_every_page_and_api_is_refused(http: httpx.AsyncClient) -> None:
    for path in ("/tail", "/overview", "/delivery", "/transfers", "/api/events/stream", "/api/dead-letters"):
        api = await http.get(path, headers={"accept": "application/json"})
        assert api.status_code == 401, (path, api.text)
        assert api.headers["content-type"].startswith("application/problem+json")
        assert api.json()["status"] == 401
        assert api.headers["www-authenticate"].startswith("Bearer")
    page = await http.get("/tail", headers={"accept": "text/html"})
    assert page.status_code == 401 and "<form" in page.text and 'name="token"' in page.text
    wrong = await http.get("/tail", headers={**bearer("not-the-token-at-all"), "accept": "application/json"})
    assert wrong.status_code == 401


async def test_login_form_and_token_once_set_a_session_cookie(http: httpx.AsyncClient) -> None:
    refused = await http.post("/login", data={"token": "wrong", "next": "/overview"})
    assert refused.status_code == 401 and "not valid" in refused.text
    done = await http.post("/login", data={"token": OPERATOR, "next": "https://evil.example/"})
    assert done.status_code == 303 and done.headers["location"] == "/tail"  # no open redirect
    cookie = done.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower() and OPERATOR not in cookie
    assert (await http.get("/overview")).status_code == 200
    http.cookies.clear()
    once = await http.get("/overview", params={"token": OPERATOR, "x": "1"})
    assert once.status_code == 303 and once.headers["location"] == "/overview?x=1"  # the token leaves the URL
    assert (await http.get("/overview")).status_code == 200
    http.cookies.clear()
    assert (
        await http.get("/overview", params={"token": "bad"}, headers={"accept": "application/json"})
    ).status_code == 401


async def test_republish_needs_the_admin_token_and_the_action_header(http: httpx.AsyncClient) -> None:
    read_only = await http.post("/api/dead-letters/1/republish", headers=bearer(OPERATOR))
    assert read_only.status_code == 403 and read_only.headers["content-type"].startswith("application/problem+json")
    missing = await http.post("/api/dead-letters/999/republish", headers=bearer(ADMIN))
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    bad = await http.post("/api/dead-letters/abc/republish", headers=bearer(ADMIN))
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "sequence"
    # With an admin session cookie but without the dashboard script's header: a cross-site form post.
    await http.post("/login", data={"token": ADMIN})
    forged = await http.post("/api/dead-letters/1/republish")
    assert forged.status_code == 403 and "x-gxwf-action" in forged.json()["detail"]


async def test_malformed_and_oversized_filters_are_refused_naming_the_field(http: httpx.AsyncClient) -> None:
    cases = [
        ({"since": "yesterday-ish"}, "since"),
        ({"since": "0"}, "since"),
        ({"subject": "wf.>.run"}, "subject"),
        ({"subject": "wf..run"}, "subject"),
        ({"subject": " ".join(f"wf.s{i}" for i in range(9))}, "subject"),
        ({"consumer": "x" * 201}, "consumer"),
        ({"text": "y" * 5000}, "text"),
    ]
    for params, field in cases:
        response = await http.get("/api/events/stream", params=params, headers=bearer())
        assert response.status_code == 422, params
        body = response.json()
        assert response.headers["content-type"].startswith("application/problem+json")
        assert body["errors"][0]["field"] == field, body
    resumed = await http.get("/api/events/stream", headers={**bearer(), "Last-Event-ID": "-5"})
    assert resumed.status_code == 422 and resumed.json()["errors"][0]["field"] == "Last-Event-ID"
    page = await http.get("/tail", params={"since": "nope"}, headers={**bearer(), "accept": "text/html"})
    assert page.status_code == 422 and "since" in page.text


async def test_tail_replays_filters_and_resumes_after_last_event_id(
    http: httpx.AsyncClient, js: JetStreamContext
) -> None:
    for index in range(6):
        await publish_run_requested(js, f"run-{index}", consumer="did:web:even" if index % 2 == 0 else "did:web:odd")
    everything = events_of(await read_sse(http, "/api/events/stream?since=1", want=6))
    assert [e["seq"] for e in everything] == [1, 2, 3, 4, 5, 6]
    even = events_of(await read_sse(http, "/api/events/stream?since=1&consumer=did:web:even", want=3))
    assert [e["event"]["data"]["run_id"] for e in even] == ["run-0", "run-2", "run-4"]
    one = events_of(await read_sse(http, "/api/events/stream?since=1&run=run-3", want=1))
    assert [e["seq"] for e in one] == [4]
    text = events_of(await read_sse(http, "/api/events/stream?since=1&text=RUN-5", want=1))
    assert [e["seq"] for e in text] == [6]
    # Resuming after event 4 gives 5 and 6: nothing missed, nothing doubled.
    resumed = events_of(await read_sse(http, "/api/events/stream", want=2, headers={"Last-Event-ID": "4"}))
    assert [e["seq"] for e in resumed] == [5, 6]


async def test_a_tail_without_a_start_opens_with_the_newest_100_events_then_goes_live(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext, store: MongoStateStore
) -> None:
    """Opened on a quiet system, the tail is not empty: the stream's newest 100 events, after a cursor naming
    the one before them (where a reconnect resumes), then what comes next. Some are older than the dashboard's
    shared feed (the client's own consumer), the rest in it."""
    for index in range(60):
        await publish_run_requested(js, f"past-{index}")
    service = make_dashboard(stack, settings)
    await service.start()
    try:
        for index in range(60, 105):
            await publish_run_requested(js, f"past-{index}")
        async with (
            httpx.AsyncClient(base_url=str(service.url), timeout=10) as client,
            asyncio.timeout(20),
            client.stream("GET", "/api/events/stream", headers=bearer()) as response,
        ):
            assert response.status_code == 200
            found: list[dict[str, str]] = []
            current: dict[str, str] = {}
            async for line in response.aiter_lines():
                if line and not line.startswith(":"):
                    key, _, value = line.partition(":")
                    current[key] = value.removeprefix(" ")
                    continue
                if current.get("event") in ("event", "cursor"):
                    found.append(current)
                    if len(events_of(found)) == 100:
                        # Everything stored has been shown: what is published now comes live.
                        await publish_run_requested(js, "live-run")
                    if len(events_of(found)) == 101:
                        break
                current = {}
        assert found[0]["event"] == "cursor" and found[0]["id"] == "5"
        shown = events_of(found)
        assert [e["seq"] for e in shown] == list(range(6, 107))
        assert shown[0]["event"]["data"]["run_id"] == "past-5" and shown[-1]["event"]["data"]["run_id"] == "live-run"
    finally:
        await service.stop()


async def test_from_now_shows_only_what_comes_next(
    http: httpx.AsyncClient, js: JetStreamContext, dashboard: DashboardService
) -> None:
    await publish_run_requested(js, "old-run")
    reader = asyncio.create_task(read_sse(http, "/api/events/stream", want=1, params={"since": "0s"}))
    await tail_open(dashboard)
    await publish_run_requested(js, "new-run")
    assert [e["event"]["data"]["run_id"] for e in events_of(await reader)] == ["new-run"]


async def test_payloads_are_redacted(http: httpx.AsyncClient, js: JetStreamContext) -> None:
    await js.publish(
        "edc.callback.received",
        b'{"id":"x1","type":"edc.callback.received","data":{"authCode":"s3cr3t-value","nested":'
        b'{"Authorization":"Bearer abc.def"},"note":"Bearer zzz","ok":"visible"}}',
        stream="WF",
    )
    event = events_of(await read_sse(http, "/api/events/stream?since=1", want=1))[0]["event"]
    assert event["data"]["authCode"] == "[redacted]"
    assert event["data"]["nested"]["Authorization"] == "[redacted]"
    assert event["data"]["note"] == "[redacted]" and event["data"]["ok"] == "visible"
    # The free-text filter searches what is shown, so a secret cannot be probed for: the first match is the
    # later event that names the word outside a secret field.
    await js.publish(
        "edc.callback.received",
        b'{"id":"x2","type":"edc.callback.received","data":{"note":"s3cr3t-value"}}',
        stream="WF",
    )
    probed = events_of(await read_sse(http, "/api/events/stream?since=1&text=s3cr3t", want=1))
    assert [e["seq"] for e in probed] == [2]


async def test_readiness_for_probes_needs_no_token(http: httpx.AsyncClient) -> None:
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "checks": {"nats": "ok", "mongo": "ok", "feed": "ok"}}
    assert (await http.get("/healthz")).json() == {"status": "alive"}


async def test_health_reports_every_server(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/health", headers=bearer())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["NATS"]["status"] == "ok" and body["NATS"]["streams"] >= 2
    assert body["MongoDB"]["status"] == "ok" and body["S3"]["status"] == "ok"


async def test_replay_from_before_the_shared_feed_hands_over_without_gaps(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext, store: MongoStateStore
) -> None:
    """Events older than the dashboard's ring come from the client's own consumer, newer ones from the ring;
    a small ring makes the hand-over happen mid-stream."""
    for index in range(3):
        await publish_run_requested(js, f"old-{index}")
    service = make_dashboard(stack, settings, ring_events=5)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=str(service.url), timeout=10) as client:
            for index in range(25):
                await publish_run_requested(js, f"new-{index}")
            replayed = events_of(await read_sse(client, "/api/events/stream?since=1", want=28))
            assert [e["seq"] for e in replayed] == list(range(1, 29))
            assert service.hub is not None and service.hub.feed.floor > 4  # the ring dropped its oldest
            resumed = events_of(await read_sse(client, "/api/events/stream", want=3, headers={"Last-Event-ID": "10"}))
            assert [e["seq"] for e in resumed] == [11, 12, 13]
    finally:
        await service.stop()


async def test_more_tails_than_allowed_are_refused_with_503(
    stack: StackEndpoints, settings: Settings, js: JetStreamContext, store: MongoStateStore
) -> None:
    service = make_dashboard(stack, settings, max_clients=1)
    await service.start()
    try:
        async with (
            # A generous timeout: the answer is immediate, but a machine busy with other work may be slow to give it.
            httpx.AsyncClient(base_url=str(service.url), timeout=30) as client,
            client.stream("GET", "/api/events/stream", headers=bearer()) as first,
        ):
            assert first.status_code == 200
            await first.aiter_lines().__anext__()
            second = await client.get("/api/events/stream", headers=bearer())
            assert second.status_code == 503 and second.json()["type"] == "urn:gxwf:problem:too-many-tails"
    finally:
        await service.stop()


async def test_replay_from_a_time(http: httpx.AsyncClient, js: JetStreamContext, dashboard: DashboardService) -> None:
    for index in range(3):
        await publish_run_requested(js, f"timed-{index}")
    found = events_of(await read_sse(http, "/api/events/stream?since=1h", want=3))
    assert [e["seq"] for e in found] == [1, 2, 3]
    # From a time after everything stored: only what comes next.
    later = datetime.now(UTC) + timedelta(seconds=1)
    reader = asyncio.create_task(
        read_sse(http, "/api/events/stream", want=1, headers={}, params={"since": later.isoformat()})
    )
    await tail_open(dashboard)
    while datetime.now(UTC) <= later:  # the next event must be stored after the time asked for
        await asyncio.sleep(0.05)
    await publish_run_requested(js, "after-the-time")
    assert [e["event"]["data"]["run_id"] for e in events_of(await reader)] == ["after-the-time"]


async def test_pages_and_streams_carry_the_security_headers(http: httpx.AsyncClient) -> None:
    page = await http.get("/overview", headers=bearer())
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["referrer-policy"] == "no-referrer"
    once = await http.get("/overview", params={"token": OPERATOR})
    assert once.status_code == 303 and "frame-ancestors 'none'" in once.headers["content-security-policy"]
    async with http.stream("GET", "/api/events/stream", headers=bearer()) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert stream.headers["x-content-type-options"] == "nosniff"


async def test_an_id_beyond_the_stream_goes_on_from_now(
    http: httpx.AsyncClient, js: JetStreamContext, dashboard: DashboardService
) -> None:
    """A browser that saw the stream before it was created again (sequences started over) is not stuck."""
    await publish_run_requested(js, "one")
    await publish_run_requested(js, "two")
    reader = asyncio.create_task(read_sse(http, "/api/events/stream", want=1, headers={"Last-Event-ID": "500"}))
    await tail_open(dashboard)
    await publish_run_requested(js, "three")
    found = await reader
    assert found[0]["event"] == "cursor" and found[0]["id"] == "2"
    assert [e["seq"] for e in events_of(found)] == [3]


async def test_a_run_away_from_this_machine_shows_its_live_log_from_the_stream(
    http: httpx.AsyncClient, js: JetStreamContext
) -> None:
    # A Kubernetes run: no local run directory, nothing archived yet; the jobs handlers ship its output.
    sink = JetStreamLogSink(js)
    await sink.append("pod-run-1", 1, 0, b"frame 1\nframe 2\n")
    await sink.append("pod-run-1", 1, 16, b"frame 3\n")
    await sink.append("pod-run-1", 2, 0, b"again 1\n")
    answer = await http.get("/runs/pod-run-1/log", headers=bearer())
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-gxwf-log"] == "stream"
    assert answer.text.rstrip("\n") == "frame 1\nframe 2\nframe 3\n\n=== attempt 2 ===\nagain 1"
    unknown = await http.get("/runs/no-such-run/log", headers=bearer())
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
