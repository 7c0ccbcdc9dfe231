"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

Screenshots of the live tail and of a transfer's timeline land in test-output/dashboard/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from dashboard.service import DashboardService
from events.subjects import DLQ_STREAM
from schemas.run import RunDocument
from tests.backbone.conftest import eventually, finished
from tests.dashboard.conftest import ADMIN, OPERATOR, publish_run_requested
from tests.provisioning.conftest import CONSUMER, TENANT, StartProvider

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (.ci/run installs it)")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    opened = await context.new_page()
    yield opened
    await context.close()


async def logged_in(page: Page, dashboard: DashboardService, path: str, token: str = OPERATOR) -> None:
    await page.goto(f"{dashboard.url}/login?next={path}")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{dashboard.url}{path.split('?')[0]}*")


async def seqs(page: Page) -> list[int]:
    values = await page.eval_on_selector_all("#events li.event", "items => items.map(i => Number(i.dataset.seq))")
    return [int(v) for v in values]


async def live(page: Page) -> None:
    await page.wait_for_selector("#status.live", timeout=5000)


async def test_without_a_token_the_page_is_refused_then_login_works(page: Page, dashboard: DashboardService) -> None:
    response = await page.goto(f"{dashboard.url}/tail")
    assert response is not None and response.status == 401
    assert await page.is_visible("#token")
    await page.fill("#token", "definitely-not-the-token")
    await page.click("button[type=submit]")
    assert await page.is_visible("#login-error")
    await page.fill("#token", OPERATOR)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{dashboard.url}/tail*")
    await live(page)


async def test_pages_load_without_console_errors(page: Page, dashboard: DashboardService) -> None:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    # Works offline: nothing is fetched from anywhere but the dashboard itself (no CDN, no web fonts).
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await logged_in(page, dashboard, "/tail")
    await live(page)
    for path in ("/overview", "/delivery", "/transfers", "/tail?subject=wf.run.>&since=1"):
        response = await page.goto(f"{dashboard.url}{path}")
        assert response is not None and response.status == 200, path
    await live(page)
    assert problems == []
    assert requested and all(url.startswith((str(dashboard.url), "data:")) for url in requested), requested


async def test_an_event_published_now_shows_in_the_tail_within_two_seconds(
    page: Page, dashboard: DashboardService, js: JetStreamContext, output_dir: Path
) -> None:
    await logged_in(page, dashboard, "/tail")
    await live(page)
    await publish_run_requested(js, "run-live-1")
    row = await page.wait_for_selector('#events li.event[data-seq="1"]', timeout=2000)
    assert row is not None and "run_id=run-live-1" in await row.inner_text()
    link = await page.get_attribute('#events li.event[data-seq="1"] a.corr', "href")
    assert link == "/tail?run=run-live-1&since=1d"
    for index in range(2, 6):
        await publish_run_requested(js, f"run-live-{index}", consumer=f"did:web:c{index}")
    await page.wait_for_selector('#events li.event[data-seq="5"]', timeout=2000)
    await row.click()  # expanded: the payload, pretty-printed
    payload = json.loads(await page.inner_text('#events li.event[data-seq="1"] pre'))
    assert payload["data"]["run_id"] == "run-live-1"
    await page.screenshot(path=str(output_dir / "tail.png"), full_page=True)


async def test_a_filter_hides_events_that_do_not_match(
    page: Page, dashboard: DashboardService, js: JetStreamContext
) -> None:
    for index in range(6):
        await publish_run_requested(js, f"run-{index}", consumer="did:web:even" if index % 2 == 0 else "did:web:odd")
    await logged_in(page, dashboard, "/tail?since=1")
    await page.fill("#f-consumer", "did:web:even")
    await page.click("#apply")
    await page.wait_for_selector('#events li.event[data-seq="5"]')
    await publish_run_requested(js, "run-odd-live", consumer="did:web:odd")  # seq 7
    await publish_run_requested(js, "run-even-live", consumer="did:web:even")  # seq 8
    await page.wait_for_selector('#events li.event[data-seq="8"]', timeout=2000)
    assert sorted(await seqs(page)) == [1, 3, 5, 8]
    assert await page.input_value("#f-consumer") == "did:web:even"


async def test_after_a_forced_reconnect_no_event_is_missing_or_doubled(
    page: Page, dashboard: DashboardService, js: JetStreamContext
) -> None:
    await logged_in(page, dashboard, "/tail")
    await live(page)
    for index in range(5):
        await publish_run_requested(js, f"before-{index}")
    await page.wait_for_selector('#events li.event[data-seq="5"]')
    assert dashboard.hub is not None
    opened = dashboard.hub.opened
    # The server ends every stream; the browser reconnects by itself with Last-Event-ID while events keep coming.
    assert dashboard.hub.drop_all() == 1
    for index in range(5):
        await publish_run_requested(js, f"during-{index}")
    await page.wait_for_selector('#events li.event[data-seq="10"]', timeout=5000)
    for index in range(3):
        await publish_run_requested(js, f"after-{index}")
    await page.wait_for_selector('#events li.event[data-seq="13"]', timeout=2000)
    await asyncio.sleep(0.3)
    assert dashboard.hub.opened == opened + 1
    shown = await seqs(page)
    assert sorted(shown) == list(range(1, 14)) and len(shown) == len(set(shown))


async def test_pause_holds_events_back_and_resume_shows_them_all(
    page: Page, dashboard: DashboardService, js: JetStreamContext
) -> None:
    await logged_in(page, dashboard, "/tail")
    await live(page)
    await publish_run_requested(js, "first")
    await page.wait_for_selector('#events li.event[data-seq="1"]')
    await page.click("#pause")
    await publish_run_requested(js, "while-paused-1")
    await publish_run_requested(js, "while-paused-2")
    await asyncio.sleep(0.5)
    assert await seqs(page) == [1]
    await page.click("#pause")
    await page.wait_for_selector('#events li.event[data-seq="3"]', timeout=2000)
    assert sorted(await seqs(page)) == [1, 2, 3]


async def test_the_timeline_of_a_transfer_shows_every_step(
    page: Page,
    dashboard: DashboardService,
    start_provider: StartProvider,
    js: JetStreamContext,
    output_dir: Path,
) -> None:
    provider = await start_provider()
    transfer = await provider.begin("shell-count", CONSUMER)
    await provider.reaches(transfer.id, "granted")
    run_id = f"tl-{transfer.id[:8]}"
    await publish_run_requested(js, run_id, consumer=TENANT)
    run = await eventually(lambda: finished(provider.store, run_id), timeout=20)
    assert isinstance(run, RunDocument) and run.state == "succeeded"
    await eventually(lambda: provider.store.db["results"].find_one({"_id": run_id, "state": "published"}))
    broken = f"tl-broken-{transfer.id[:8]}"
    await publish_run_requested(js, broken, consumer=TENANT, command=("/bin/sh", "-c", "exit 3"))
    failed = await eventually(lambda: finished(provider.store, broken), timeout=20)
    assert isinstance(failed, RunDocument) and failed.state == "failed"
    await provider.deprovision(transfer)
    await provider.reaches(transfer.id, "deprovisioned")

    await logged_in(page, dashboard, f"/transfers/{transfer.id}")
    phases = await page.eval_on_selector_all("#timeline > li.phase", "items => items.map(i => i.dataset.phase)")
    for phase in ("negotiation", "provisioning", "deployment", "registration", "access", f"run:{run_id}"):
        assert phase in phases, phases
    assert phases[-1] == "deprovisioning"
    run_phase = f'#timeline li.phase[data-phase="run:{run_id}"]'
    states = await page.eval_on_selector_all(f"{run_phase} li.entry", "items => items.map(i => i.dataset.state)")
    assert states[:4] == ["queued", "pending", "running", "succeeded"] and states[4] == "result published"
    durations = await page.eval_on_selector_all(f"{run_phase} li.entry .took", "items => items.length")
    assert durations >= 3  # queued, pending and running each with how long it lasted
    assert "deprovisioned" in await page.inner_text('#timeline li.phase[data-phase="deprovisioning"]')
    await page.screenshot(path=str(output_dir / "timeline.png"), full_page=True)
    # The run's links: its archived log and its result.
    links = await page.eval_on_selector_all(f"{run_phase} a.link", "items => items.map(i => i.getAttribute('href'))")
    assert links == [f"/runs/{run_id}/log", f"/runs/{run_id}/result"]
    log = await page.request.get(f"{dashboard.url}/runs/{run_id}/log")
    assert log.status == 200 and log.headers["x-gxwf-log"] == "archived"
    result = await page.request.get(f"{dashboard.url}/runs/{run_id}/result")
    assert result.status == 200 and (await result.json())["state"] == "published"

    # The overview: the consumer with its transfer and runs, the local site's runs, the failed run and why.
    await page.goto(f"{dashboard.url}/overview")
    consumer_row = await page.inner_text(f'#consumers tr:has-text("{TENANT}")')
    assert consumer_row.split("\t")[:2] == [TENANT, "1"], consumer_row
    site_row = await page.inner_text('#sites tr:has-text("local")')
    assert f"{provider.settings.runs_per_site} runs at once" in site_row and "cpu" in site_row
    failure = await page.inner_text(f'#failures tr:has-text("{broken}")')
    assert "run" in failure and "exit code 3" in failure, failure
    await page.screenshot(path=str(output_dir / "overview.png"), full_page=True)


async def test_a_poisoned_event_is_listed_as_dead_letter_and_republished(
    page: Page, dashboard: DashboardService, start_provider: StartProvider, js: JetStreamContext, output_dir: Path
) -> None:
    await start_provider()
    await logged_in(page, dashboard, "/delivery", token=ADMIN)
    assert "No dead letters." in await page.inner_text("#letters")
    # Not a valid provision request: the provisioning handler dead-letters it at once, and the open page
    # shows it by itself (it re-reads every 5 s).
    await js.publish("edc.provision.requested", b'{"id":"poison-1","type":"edc.provision.requested","data":{}}')
    await page.wait_for_selector("#letters li.letter", timeout=10_000)
    item = page.locator("#letters li.letter").first
    assert "edc.provision.requested" in await item.inner_text()
    assert "ValidationError" in await item.inner_text()
    assert "provisioning-requested" in await page.inner_text("#consumers")
    await item.locator("button.republish").click()
    outcome = item.locator(".outcome")
    await outcome.wait_for()
    await page.wait_for_function("() => document.querySelector('#letters .outcome').textContent.length > 0")
    text = await outcome.inner_text()
    assert text.startswith("re-published as #"), text
    await page.screenshot(path=str(output_dir / "delivery.png"), full_page=True)
    republished = int(text.split("#")[1])
    stored = await js.get_msg("WF", republished)
    assert stored.subject == "edc.provision.requested" and json.loads(stored.data or b"{}")["id"] == "poison-1"
    assert stored.headers is not None and stored.headers["Gxwf-Republished-From"] == f"{DLQ_STREAM}:1"
    # Still malformed, so it is dead-lettered again; a second click re-publishes nothing more.
    await eventually(lambda: _at_least(js, 2), timeout=10)
    await item.locator("button.republish").click()
    await page.wait_for_function("() => document.querySelector('#letters .outcome').textContent.startsWith('already')")
    # The live tail says how many dead letters there are and links to them.
    await page.goto(f"{dashboard.url}/tail")
    badge = page.locator("#dead-letters")
    await badge.wait_for(state="visible")
    assert await badge.inner_text() == "2 dead letters" and await badge.get_attribute("href") == "/delivery"


async def _at_least(js: JetStreamContext, count: int) -> bool:
    return int((await js.stream_info(DLQ_STREAM)).state.messages) >= count
