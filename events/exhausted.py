"""Events whose handler never answered: the worker crashed or hung on every delivery.

The middleware dead-letters an event whose handler raised. A worker killed mid-event (out of memory on a
poison event, say) never gets that far; after max_deliver tries JetStream stops delivering and says so in
an advisory. This turns the advisory into the same dead letter, so such an event is not silently stranded.
"""

from __future__ import annotations

import json

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.errors import NotFoundError

from events.delivery import DeadLetterSink, build_dead_letter
from events.payloads.dead_letter import HandlerError
from events.subjects import STREAM, dead_letter_subject

log = structlog.get_logger("gxwf.delivery")

MAX_DELIVERIES_ADVISORY = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{STREAM}.*"


async def forward_exhausted_deliveries(nc: Client, sink: DeadLetterSink) -> Subscription:
    js = nc.jetstream()

    async def on_advisory(msg: Msg) -> None:
        try:
            advisory = json.loads(msg.data)
            seq = int(advisory["stream_seq"])
            consumer = str(advisory["consumer"])
            deliveries = int(advisory.get("deliveries", 0))
            stored = await js.get_msg(STREAM, seq)
        except NotFoundError:
            return  # aged out of the stream already: nothing left to keep
        except (ValueError, KeyError, TypeError) as error:
            log.warning("unreadable max-deliveries advisory", error=repr(error))
            return
        reason = HandlerError(
            type="MaxDeliveriesExceeded",
            message=f"not acknowledged after {deliveries} deliveries: the handler crashed or hung each time",
        )
        letter = build_dead_letter(str(stored.subject), stored.data or b"", consumer, reason, deliveries, seq)
        await sink(dead_letter_subject(letter.original_subject), letter)
        log.error("event dead-lettered after exhausted deliveries", handler=consumer, stream_sequence=seq)

    # A queue group: with several replicas, one of them records each advisory.
    return await nc.subscribe(MAX_DELIVERIES_ADVISORY, queue="gxwf-exhausted-deliveries", cb=on_advisory)
