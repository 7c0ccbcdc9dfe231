"""One replica of `gxwf bench backbone --replicas`: a process with a durable subscriber, shared with the other
replicas, as a handler group's replicas share theirs. Run by the benchmark, not by people:

    GXWF_NATS_URL=... python -m gxwf.bench_backbone_worker SUBJECT DURABLE REPORT_SUBJECT INDEX

It prints `ready` once subscribed; each event it handles is reported on REPORT_SUBJECT (a plain NATS publish:
`<index> <seconds from publish to handled> <doc_id>`) before its ack; it stops when its stdin closes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from events.bus import Bus
from events.delivery import DeliveryPolicy
from events.envelope import Envelope
from events.payloads.common import Payload


class Tick(Payload):
    doc_id: str
    sent: float


async def serve(nats_url: str, subject: str, durable: str, report: str, index: int) -> None:
    bus = Bus(nats_url, DeliveryPolicy(concurrency=64, ack_wait=30.0), name=f"bench-replica-{index}")

    async def handler(event: Envelope[Any]) -> None:
        tick: Tick = event.data
        connection = bus.broker.config.connection_state.connection
        assert connection is not None
        await connection.publish(report, f"{index} {time.time() - tick.sent} {tick.doc_id}".encode())

    bus.subscribe(subject=subject, durable=durable, payload=Tick, handler=handler)
    await bus.broker.start()
    print("ready", flush=True)
    try:
        # Until the benchmark closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await bus.broker.stop()


def main(argv: list[str]) -> int:
    subject, durable, report, index = argv
    asyncio.run(serve(os.environ["GXWF_NATS_URL"], subject, durable, report, int(index)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
