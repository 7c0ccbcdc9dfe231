"""wf.run.<terminal>: put the run's outputs and log under the consumer's prefix, write a manifest, announce it.

Runs that failed, were stopped or timed out are published too: their log is what the consumer needs most.

When publishing fails on the event's last delivery, the result is marked `failed` with the error and
`wf.result.publish_failed` announces it: a result left `collecting` would hold the consumer's release back for
ever. The error still propagates, so the event is also kept in the dead-letter stream like any other.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog

from events.attempt import AheadOfState, current_delivery
from events.envelope import Envelope, utcnow
from events.payloads.result import ResultFile, ResultPublished, ResultPublishFailed
from events.payloads.run import RunFact, RunFailed, RunStopped, RunSucceeded, RunTimedOut
from handlers.context import HandlerContext
from handlers.declare import on
from ports.store import Outcome
from schemas.names import LOG_FILE, MANIFEST_FILE, result_prefix
from schemas.provisioning import ResultDocument, ResultState
from schemas.run import RunDocument, RunState

log = structlog.get_logger("gxwf.results")


class RunNotEndedYet(AheadOfState):
    """The end fact is ahead of the tracker, which has not applied it yet: the bus delivers it again."""


def _ended_by(run: RunDocument, event: Envelope[RunFact], target: RunState) -> bool:
    """Whether this fact (ending the run in `target`) is the one that ended the run. A second end of a run that
    already ended otherwise publishes nothing: its run has no such end."""
    if run.state in RunDocument.machine.terminal:
        return run.state == target and any(entry.event_id == event.id for entry in run.history)
    if run.state == RunState.QUEUED and run.attempt > 1:
        # Queued for a later attempt: an end of the attempt before that the tracker refused (say a time-out
        # reported beside the failure that retried it). That attempt has no such end.
        return False
    # Not ended yet. Whoever reports an end read the run first, so the tracker takes it from where the run is,
    # unless the store lost the run's last transitions (say `running`): then `gxwf store rebuild` brings it
    # forward and the tracker's part is re-applied. Either way the end is waited for, not dropped.
    raise RunNotEndedYet(f"run {run.id} is {run.state}; {event.type} not applied yet")


async def _ended_run(
    ctx: HandlerContext, run: RunDocument, event: Envelope[RunFact], target: RunState
) -> RunDocument | None:
    """The run as this fact ended it, or None when the run did not take the fact. Ahead of the tracker, it reads
    the run again for up to `ctx.ahead_wait` seconds before handing the event back to the bus."""
    deadline = asyncio.get_running_loop().time() + ctx.ahead_wait
    while True:
        try:
            return run if _ended_by(run, event, target) else None
        except RunNotEndedYet:
            if asyncio.get_running_loop().time() >= deadline:
                raise
        await asyncio.sleep(0.02)
        fresh = await ctx.store.get(RunDocument, run.id)
        if fresh is None:
            return None
        run = fresh


@on(RunSucceeded, durable="results-run-succeeded", per_site=True)
async def on_run_succeeded(event: Envelope[RunSucceeded], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, RunState.SUCCEEDED, exit_code=0)


@on(RunFailed, durable="results-run-failed", per_site=True)
async def on_run_failed(event: Envelope[RunFailed], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, RunState.FAILED, exit_code=event.data.exit_code)


@on(RunStopped, durable="results-run-stopped", per_site=True)
async def on_run_stopped(event: Envelope[RunStopped], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, RunState.STOPPED)


@on(RunTimedOut, durable="results-run-timed-out", per_site=True)
async def on_run_timed_out(event: Envelope[RunTimedOut], ctx: HandlerContext) -> None:
    await publish_results(event, ctx, RunState.TIMED_OUT)


async def publish_results(
    event: Envelope[RunFact], ctx: HandlerContext, target: RunState, *, exit_code: int | None = None
) -> None:
    """Publish the outputs and log of the run this fact ended in `target`."""
    run_id = event.data.run_id
    run = await ctx.store.get(RunDocument, run_id)
    if run is None:
        # Every run's document exists before any end of it is reported: a store that lost it (acknowledged writes
        # lost) has it back after `gxwf store rebuild`, so this is retried, not acked as nothing to publish.
        raise RunNotEndedYet(f"run {run_id} is not in the store; {event.type} waits for it")
    if run.consumer_id != event.data.consumer_id:
        log.warning("finished fact for another consumer's run", run_id=run_id, fact=event.type)
        return
    ctx.require_objects()
    compute = ctx.require_compute()
    if run.site is not None and run.site != compute.site:
        return  # its artifacts are on its own site, whose results handlers publish them
    ended = await _ended_run(ctx, run, event, target)
    if ended is None:
        log.info("end fact the run did not take: nothing to publish", run_id=run.id, state=run.state, fact=event.type)
        return
    run = ended
    created = await ctx.store.create(
        ResultDocument(id=run.id, state=ResultState.COLLECTING, consumer_id=run.consumer_id), event_id=event.id
    )
    if not created:
        existing = await ctx.store.get(ResultDocument, run.id)
        if existing is not None and existing.state == ResultState.PUBLISHED:
            await _announce(ctx, run, existing.manifest_key or "", existing.files, event)
            return
        if existing is not None and existing.state == ResultState.FAILED:
            # Given up on already (this is the spare delivery after its dead letter could not be stored, or
            # the same end reported again): announce it again, JetStream drops the duplicate.
            await _announce_failure(ctx, run, existing.reason or "", event)
            return

    try:
        manifest_key, files, log_key = await _collect(ctx, run, target, exit_code)
    except Exception as error:
        delivery = current_delivery()
        if delivery is not None and delivery.last:
            await _give_up(ctx, run, event, error)
        raise
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


async def _collect(
    ctx: HandlerContext, run: RunDocument, target: RunState, exit_code: int | None
) -> tuple[str, list[dict[str, Any]], str | None]:
    """Outputs and log into the object store, then the manifest; returns the manifest key, files and log key."""
    objects = ctx.require_objects()
    compute = ctx.require_compute()
    await ctx.faults.reach("results.publish")
    prefix = result_prefix(run.consumer_id, run.id)
    artifacts = await compute.artifacts(run.id)
    files: list[dict[str, Any]] = []
    for name, path in artifacts.outputs:
        stored = await objects.put_file(output_key(prefix, name), path)
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
        log_key = (await objects.put_file(prefix + LOG_FILE, artifacts.log, content_type="text/plain")).key
    manifest = {
        "run_id": run.id,
        "consumer_id": run.consumer_id,
        "asset_id": run.asset_id,
        "asset_version": run.asset_version,
        "parameters": run.parameters,
        "run_state": str(target),
        "exit_code": exit_code,
        "files": files,
        "log_key": log_key,
        "published_at": utcnow().isoformat(),
    }
    manifest_key = prefix + MANIFEST_FILE
    await objects.put_bytes(manifest_key, json.dumps(manifest, indent=2).encode(), content_type="application/json")
    return manifest_key, files, log_key


def output_key(prefix: str, name: str) -> str:
    """Where an output of the run whose results are under `prefix` is kept."""
    return prefix + "outputs/" + name


async def _give_up(ctx: HandlerContext, run: RunDocument, cause: Envelope[RunFact], error: Exception) -> None:
    reason = f"{type(error).__name__}: {error}"[:4000]
    log.error("result publishing failed for good", run_id=run.id, reason=reason)
    settled = await ctx.store.transition(
        ResultDocument, run.id, ResultState.FAILED, event_id=cause.id, reason=reason, fields={"reason": reason}
    )
    # Rejected means another delivery settled it meanwhile: published, or failed and announced already.
    if settled.settled:
        await _announce_failure(ctx, run, reason, cause)


async def _announce_failure(ctx: HandlerContext, run: RunDocument, reason: str, cause: Envelope[RunFact]) -> None:
    await ctx.emit(
        ResultPublishFailed(run_id=run.id, consumer_id=run.consumer_id, reason=reason), about=run.id, cause=cause
    )
