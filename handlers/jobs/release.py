"""Once a consumer has no live transfer left, remove what its runs left on this site (its runs namespace on
Kubernetes, run directories locally), after every run has ended and its results are published; the results
themselves stay in the object store for the retention period.

A published result also lets the backend drop what it kept to publish it (a Kubernetes run's finished Jobs).

Two triggers, whichever comes last does it: the consumer's deprovisioning (wf.consumer.deprovisioned), and each
of its runs' results settling afterwards (wf.result.published, or wf.result.publish_failed when publishing gave
up), since runs stopped by the deprovisioning end a little later. Neither waits or retries: the other one comes."""

from __future__ import annotations

import structlog

from events.envelope import Envelope
from events.payloads.consumer import ConsumerDeprovisioned, ConsumerReleased
from events.payloads.result import ResultPublished, ResultPublishFailed
from handlers.context import HandlerContext
from handlers.declare import on
from schemas.provisioning import LIVE, ProvisionDocument, ProvisionState, ResultDocument, ResultState
from schemas.run import RunDocument

log = structlog.get_logger("gxwf.jobs")
# Still tearing down counts too: its own wf.consumer.deprovisioned follows.
_LIVE = sorted(LIVE | {ProvisionState.DEPROVISIONING})


@on(ConsumerDeprovisioned, durable="jobs-consumer-deprovisioned", per_site=True)
async def on_consumer_deprovisioned(event: Envelope[ConsumerDeprovisioned], ctx: HandlerContext) -> None:
    gone = event.data
    if gone.consumer_id is not None:
        await release_if_due(gone.consumer_id, ctx, event.id)


@on(ResultPublished, durable="jobs-result-published", per_site=True)
async def on_result_published(event: Envelope[ResultPublished], ctx: HandlerContext) -> None:
    published = event.data
    run = await ctx.store.get(RunDocument, published.run_id)
    compute = ctx.require_compute()
    if run is not None and run.state in RunDocument.machine.terminal and run.site == compute.site:
        # Published: what the backend kept to publish it (finished Jobs, saved logs) may go now.
        await compute.discard(run.id)
    await release_if_due(published.consumer_id, ctx, event.id)


@on(ResultPublishFailed, durable="jobs-result-publish-failed", per_site=True)
async def on_result_publish_failed(event: Envelope[ResultPublishFailed], ctx: HandlerContext) -> None:
    # Settled too: a failed result never becomes published, so waiting for it would keep the consumer for ever.
    # What the backend kept stays until the release, for whoever looks into the failure.
    failed = event.data
    await release_if_due(failed.consumer_id, ctx, event.id)


async def release_if_due(consumer: str, ctx: HandlerContext, cause: str) -> bool:
    compute = ctx.require_compute()
    if await ctx.store.count(ProvisionDocument, states=_LIVE, consumer_id=consumer):
        return False  # a live transfer keeps its runs and namespace
    ended = await ctx.store.find(ProvisionDocument, states=[ProvisionState.DEPROVISIONED], consumer_id=consumer)
    if not ended:
        return False  # never provisioned through a transfer (an operator's runs): nothing to release
    last = max(ended, key=lambda doc: doc.updated_at)
    runs = await ctx.store.find(RunDocument, limit=100_000, consumer_id=consumer, site=compute.site)
    if any(run.state not in RunDocument.machine.terminal for run in runs):
        log.info("release waits for the consumer's runs to end", consumer=consumer)
        return False
    for run in runs:
        result = await ctx.store.get(ResultDocument, run.id)
        # The results handler reads the log from the workload: a pod's log dies with its namespace. Published
        # and failed results are settled; only one still collecting is waited for.
        if result is None or result.state == ResultState.COLLECTING:
            log.info("release waits for the results of a run", consumer=consumer, run_id=run.id)
            return False
    if not await compute.release(consumer, [run.id for run in runs]):
        # Raised, so the bus redelivers with backoff: the namespace is still terminating.
        raise RuntimeError(f"{compute.name} site {compute.site}: the consumer's runs are not gone yet")
    await ctx.emit(
        ConsumerReleased(consumer_id=consumer, transfer_process_id=last.id, site=compute.site, runs=len(runs)),
        about=last.id,
        cause=cause,
        key=(last.id, compute.site),
    )
    log.info("consumer released", consumer=consumer, site=compute.site, runs=len(runs))
    return True
