"""`gxwf store rebuild`: read the run facts of stream WF and bring the store's run documents up to them.

Reads with an ordered consumer of its own (no durable, nothing acknowledged), so running handlers are not
disturbed; the replay itself is handlers.jobs.rebuild, the handlers' own conditional steps.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import nats
from nats.errors import NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from adapters.mongo_assets import MongoAssetCatalogue
from adapters.mongo_store import MongoStateStore
from events.envelope import Envelope
from events.payloads.common import Payload
from events.payloads.result import ResultExpired, ResultPublished, ResultPublishFailed
from events.payloads.run import (
    RunFailed,
    RunPending,
    RunQueued,
    RunRequested,
    RunRetrying,
    RunRunning,
    RunStopped,
    RunSucceeded,
    RunTimedOut,
)
from events.permissions import connect_options
from events.subjects import STREAM
from gxwf.definitions import load_sites
from gxwf.settings import Settings
from handlers.context import HandlerContext
from handlers.jobs.rebuild import Placement, RebuildReport, rebuild_runs
from handlers.results.rebuild import ResultsRebuilt, rebuild_results

# Runs' and results' facts; the rest of wf.> (deployments, assets) is skipped as it arrives.
FACT_SUBJECTS = "wf.>"
_PAYLOADS: dict[str, type[Payload]] = {
    cls.subject: cls
    for cls in (
        RunRequested,
        RunQueued,
        RunPending,
        RunRunning,
        RunSucceeded,
        RunRetrying,
        RunFailed,
        RunStopped,
        RunTimedOut,
        ResultPublished,
        ResultPublishFailed,
        ResultExpired,
    )
}


class RebuildFailed(Exception):
    """What stopped the rebuild, in one line for the CLI."""


class _NoPublishing:
    """The rebuild's event sink: it re-derives state from facts and must never publish one."""

    async def publish(self, event: Envelope[Any]) -> None:
        raise RuntimeError(f"the store rebuild does not publish ({event.type})")


def placement(settings: Settings) -> Placement:
    backend = settings.compute_backend
    sites = {site.name: str(site.backend) for site in load_sites(settings.sites_file).sites}
    return Placement(backend=backend, site=settings.compute_site or backend, sites=sites)


async def run_facts(nats_url: str, *, wait: float = 10.0) -> AsyncIterator[Envelope[Any]]:
    """The run and result events of stream WF, oldest first, typed; others and unreadable ones are skipped."""
    try:
        # One more try, then the error (0 would mean: try forever); the failure is reported once, below.
        nc = await nats.connect(
            connect_timeout=5,
            max_reconnect_attempts=1,
            allow_reconnect=False,
            error_cb=_quiet,
            **connect_options(nats_url),
        )
    except (NoServersError, OSError, NatsTimeout) as error:
        raise RebuildFailed(f"NATS at {_where(nats_url)} not reachable ({type(error).__name__})") from None
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(STREAM)
        except NotFoundError:
            raise RebuildFailed(f"no stream {STREAM} on NATS at {_where(nats_url)}: nothing to rebuild from") from None
        sub = await js.subscribe(
            FACT_SUBJECTS, ordered_consumer=True, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL)
        )
        try:
            info = await sub.consumer_info()
            # Pushed already (delivered) or still to push (pending): none of either is an empty history.
            delivered = info.delivered.consumer_seq if info.delivered is not None else 0
            if info.num_pending == 0 and not delivered:
                return
            while True:
                try:
                    msg = await sub.next_msg(timeout=wait)
                except NatsTimeout:
                    raise RebuildFailed(f"stream {STREAM} stopped delivering for {wait:g}s") from None
                event = _decode(msg.subject, msg.data)
                if event is not None:
                    yield event
                if msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


async def _quiet(error: Exception) -> None:
    """nats-py would print each failed connection attempt with its traceback."""


def _decode(subject: str, data: bytes) -> Envelope[Any] | None:
    payload = _PAYLOADS.get(subject)
    if payload is None:
        return None
    try:
        return Envelope[payload].model_validate(json.loads(data))  # type: ignore[valid-type]
    except (ValidationError, ValueError):
        return None


@dataclass(frozen=True)
class Rebuilt:
    runs: RebuildReport
    results: ResultsRebuilt

    def line(self) -> str:
        results = self.results
        return (
            f"{self.runs.line()} results={results.results} results_created={results.created} "
            f"results_transitions={results.transitions}"
        )

    @property
    def changed(self) -> bool:
        return self.runs.changed or bool(self.results.created or self.results.transitions)


async def rebuild(settings: Settings, nats_url: str, mongo_url: str) -> Rebuilt:
    # A few seconds to find the store: the rebuild is for a store that is back, not one still starting.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, serverSelectionTimeoutMS=3000, appname="gxwf-store-rebuild"
    )
    store = MongoStateStore(client, settings.mongo_database)
    try:
        try:
            async with asyncio.timeout(10):
                await store.ping()
            await store.ensure_indexes()
        except (PyMongoError, TimeoutError) as error:
            raise RebuildFailed(f"store at {_where(mongo_url)} not reachable ({type(error).__name__})") from None
        ctx = HandlerContext(
            store=store,
            events=_NoPublishing(),
            assets=MongoAssetCatalogue(store.db),
            adhoc_runs=settings.adhoc_runs,
        )
        try:
            # Read whole first: a run's facts are applied together, and the results' after the runs'.
            events = [event async for event in run_facts(nats_url)]
            runs = await rebuild_runs(events, ctx, placement(settings))
            return Rebuilt(runs, await rebuild_results(events, store))
        except PyMongoError as error:
            raise RebuildFailed(
                f"store at {_where(mongo_url)} failed during the rebuild ({type(error).__name__})"
            ) from None
    finally:
        await store.close()


def _where(url: str) -> str:
    """host:port of a server URL, never its credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.netloc.rsplit("@", 1)[-1].split("/")[0] or url
