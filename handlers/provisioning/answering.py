"""One handler at a time answers the connector for a transfer, and a handler that takes over from one that died
(or stalled past its turn) after calling back asks the connector before calling again.

Two handlers may answer at once: two triggers of one step (the deployment's deletion and the transfer's end), also
in one process, or an event redelivered while the replica that had it is paused past the ack wait. A per-transfer
lease (one claimant per handler call) lets one through; the others' events are retried and find the step done.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable, Collection

from events.attempt import AheadOfState
from handlers.context import HandlerContext
from ports.edc import EdcError
from schemas.provisioning import ProvisionDocument

# Longer than the EDC client's retries of one callback; shorter than the bus's retries of an event that waits for
# it (0.5 + 2 + 5 + 15 s by default), so a handler that died holding it is taken over before its event is given up.
ANSWER_LEASE_SECONDS = 15.0


class AnswerInProgress(AheadOfState):
    """Another handler is answering the connector for this transfer: retried, then finds the answer given."""


@contextlib.asynccontextmanager
async def answering(ctx: HandlerContext, name: str, what: str) -> AsyncIterator[Callable[[], None]]:
    """Hold the lease `name` while answering; yields the check to make right before calling the connector: a
    handler paused past its lease gives way instead of calling."""
    if ctx.leases is None:
        yield lambda: None
        return
    claimant = f"{ctx.holder}/{secrets.token_hex(6)}"
    lease = await ctx.leases.hold(name, claimant, ANSWER_LEASE_SECONDS)
    if not lease:
        raise AnswerInProgress(f"{what}: another handler is answering the connector")

    def still_ours() -> None:
        if lease.expired():
            raise AnswerInProgress(f"{what}: this handler's turn to answer expired")

    try:
        yield still_ours
    finally:
        # Given back at once, so the next in line finds the outcome without waiting the lease out.
        with contextlib.suppress(Exception):
            await ctx.leases.release(name, claimant)


async def connector_is_past(ctx: HandlerContext, doc: ProvisionDocument, states: Collection[str]) -> bool:
    """Whether the connector reports the transfer in one of `states` (it got the answer a handler that died may
    have given); unknown when it cannot be asked, so answered once more rather than never."""
    if ctx.edc is None:
        return False
    try:
        info = await ctx.edc.transfer_process(doc.connector, doc.id)
    except EdcError:
        return False
    return (info.state or "").upper() in states
