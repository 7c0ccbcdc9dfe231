"""wf.run.<terminal>: put the run's outputs and log under the consumer's prefix, write a manifest, announce it.

Runs that failed, were stopped or timed out are published too: their log is what the consumer needs most.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import structlog

from events.envelope import Envelope, utcnow
from events.payloads.result import ResultFile, ResultPublished
from events.payloads.run import RunFact, RunFailed, RunStopped, RunSucceeded, RunTimedOut
from handlers.context import HandlerContext
from handlers.declare import on
from ports.store import Outcome
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument

log = structlog.get_logger("gxwf.results")


def result_prefix(consumer_id: str, run_id: str) -> str:
    """Every object of a run lives under its consumer's prefix; ids are quoted so none can climb out."""
    return f"results/{quote(consumer_id, safe='')}/{quote(run_id, safe='')}/"


@on(RunSucceeded, durable="results-run-succeeded", per_site=True)
async def on_run_succeeded(event: Envelope[RunSucceeded], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, "succeeded", exit_code=0)


@on(RunFailed, durable="results-run-failed", per_site=True)
async def on_run_failed(event: Envelope[RunFailed], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, "failed", exit_code=event.data.exit_code)


@on(RunStopped, durable="results-run-stopped", per_site=True)
async def on_run_stopped(event: Envelope[RunStopped], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, "stopped")


@on(RunTimedOut, durable="results-run-timed-out", per_site=True)
async def on_run_timed_out(event: Envelope[RunTimedOut], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, "timed_out")


async def publish_results(
    event: Envelope[RunFact], ctx: HandlerContext, run_state: str, *, exit_code: int | None = None
) -> None:
    run_id = event.data.run_id
    run = await ctx.store.get(RunDocument, run_id)
    if run is None or run.consumer_id != event.data.consumer_id:
        log.warning("finished fact for an unknown run", run_id=run_id, fact=event.type)
        return
    objects = ctx.require_objects()
    compute = ctx.require_compute()
    if run.site is not None and run.site != compute.site:
        return  # its artifacts are on its own site, whose results handlers publish them
    created = await ctx.store.create(
        ResultDocument(id=run.id, state=ResultState.COLLECTING, consumer_id=run.consumer_id), event_id=event.id
    )
    if not created:
        existing = await ctx.store.get(ResultDocument, run.id)
        if existing is not None and existing.state == ResultState.PUBLISHED:
            await _announce(ctx, run, existing.manifest_key or "", existing.files, event)
            return

    prefix = result_prefix(run.consumer_id, run.id)
    artifacts = await compute.artifacts(run.id)
    files: list[dict[str, Any]] = []
    for name, path in artifacts.outputs:
        stored = await objects.put_file(prefix + "outputs/" + name, path)
        files.append(
            {
                "name": name,
                "key": stored.key,
                "size": stored.size,
                "sha256": stored.sha256,
                "content_type": stored.content_type,
            }
        )
    log_key = None
    if artifacts.log is not None:
        log_key = (await objects.put_file(prefix + "log.txt", artifacts.log, content_type="text/plain")).key
    manifest = {
        "run_id": run.id,
        "consumer_id": run.consumer_id,
        "asset_id": run.asset_id,
        "asset_version": run.asset_version,
        "parameters": run.parameters,
        "run_state": run_state,
        "exit_code": exit_code,
        "files": files,
        "log_key": log_key,
        "published_at": utcnow().isoformat(),
    }
    manifest_key = prefix + "manifest.json"
    await objects.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode(), content_type="application/json")
    result = await ctx.store.transition(
        ResultDocument,
        run.id,
        ResultState.PUBLISHED,
        event_id=event.id,
        fields={"manifest_key": manifest_key, "files": files, "log_key": log_key},
    )
    if result.outcome is Outcome.REJECTED:
        log.warning("result already settled", run_id=run.id, state=result.state)
        return
    await _announce(ctx, run, manifest_key, files, event, log_key)


async def _announce(
    ctx: HandlerContext,
    run: RunDocument,
    manifest_key: str,
    files: list[dict[str, Any]],
    cause: Envelope[RunFact],
    log_key: str | None = None,
) -> None:
    await ctx.emit(
        ResultPublished(
            run_id=run.id,
            consumer_id=run.consumer_id,
            files=[ResultFile(name=f["name"], size=f["size"], sha256=f["sha256"]) for f in files],
            manifest_key=manifest_key,
            log_key=log_key,
        ),
        about=run.id,
        cause=cause,
    )
