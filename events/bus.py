"""The broker factory and the one helper every subscriber is declared with."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from faststream import AckPolicy
from faststream.nats import ConsumerConfig, JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.annotations import NatsMessage as NatsMessageParam
from faststream.nats.security import NatsToken
from faststream.security import SASLPlaintext
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import DeliverPolicy

from events import nats_compat
from events.catalogue import BY_SUBJECT, CATALOGUE, DEAD_LETTER, EventSpec
from events.delivery import DeadLetterMiddleware, DeliveryPolicy
from events.envelope import Envelope
from events.exhausted import forward_exhausted_deliveries
from events.outages import ServerOutages
from events.payloads.common import Payload
from events.payloads.dead_letter import DeadLetter
from events.permissions import connect_options
from events.reconnect import quiet_broken_connections, reconnecting
from events.subjects import DLQ_STREAM, STREAM
from events.wire import publish_to_jetstream

nats_compat.install()
log = structlog.get_logger("gxwf.bus")
FASTSTREAM_LOGGER = "gxwf.faststream"

# Declared by ensure_streams with our settings; FastStream must not re-declare it with its defaults.
WF_STREAM = JStream(STREAM, declare=False)
DLQ_JSTREAM = JStream(DLQ_STREAM, declare=False)

EventHandler = Callable[[Envelope[Any]], Awaitable[None]]


def _broker_options(nats_url: str) -> dict[str, Any]:
    """`connect_options` in FastStream's terms: the credentials as its `security`."""
    options = connect_options(nats_url)
    user, password, token = (options.pop(key, None) for key in ("user", "password", "token"))
    if user is not None:
        options["security"] = SASLPlaintext(username=user, password=password or "")
    elif token is not None:
        options["security"] = NatsToken(token)
    return options


class Bus:
    """A FastStream NATS broker with our delivery policy, plus typed publishing of envelopes."""

    def __init__(self, nats_url: str, policy: DeliveryPolicy | None = None, *, name: str = "gxwf") -> None:
        self.policy = policy or DeliveryPolicy()
        quiet_broken_connections(logging.getLogger(FASTSTREAM_LOGGER))
        self._outages = ServerOutages(self.policy.unreachable, self.policy.unreachable_patience)
        self.broker = NatsBroker(
            name=name,
            **_broker_options(nats_url),
            **reconnecting(name),
            middlewares=[DeadLetterMiddleware(self.policy, self._publish_dead_letter)],
            ack_policy=AckPolicy.NACK_ON_ERROR,
            description="gaiax-workflows event bus",
            graceful_timeout=15.0,
            # FastStream logs every message received/processed at this level, and its task supervisor chats
            # at INFO: both go to a logger of ours, which the CLI keeps at WARNING unless asked for debug.
            log_level=logging.DEBUG,
            logger=logging.getLogger(FASTSTREAM_LOGGER),
        )

    async def publish(self, event: Envelope[Any]) -> None:
        """Publish and wait for JetStream's ack; the event id is the de-duplication key.

        Straight through the broker's nats-py JetStream context: FastStream's per-message publish machinery
        cost as much as a handler's whole store transition, and adds nothing for a pre-built envelope.
        """
        js = self.broker.config.connection_state.stream
        if js is None:
            raise RuntimeError("connect or start the broker before publishing")
        await publish_to_jetstream(js, event)

    async def forward_exhausted_deliveries(self) -> None:
        """Dead-letter events that JetStream gave up on because no worker ever answered (call after start)."""
        nc = self.broker.config.connection_state.connection
        if nc is None:
            raise RuntimeError("start or connect the broker first")
        await forward_exhausted_deliveries(nc, self._publish_dead_letter)

    async def _publish_dead_letter(self, subject: str, letter: DeadLetter) -> None:
        seq = letter.stream_sequence
        msg_id = f"dlq:{letter.handler}:{seq}" if seq is not None else None
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await self.broker.publish(letter.model_dump(mode="json"), subject=subject, headers=headers, stream=DLQ_STREAM)

    def subscribe(
        self,
        *,
        subject: str,
        durable: str,
        payload: type[Payload],
        handler: EventHandler,
        description: str | None = None,
    ) -> None:
        """A durable pull consumer with NACK_ON_ERROR, bounded redelivery and dead-lettering."""
        model = Envelope[payload]  # type: ignore[valid-type]
        interval = max(self.policy.ack_wait / 3.0, 0.2)

        async def consume(event: Any, message: Any) -> None:
            async with _heartbeat(message, interval):
                await self._outages.wait_out(lambda: handler(event), durable)

        # FastStream reads the signature to validate the body and to document it in AsyncAPI.
        consume.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter("event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model),
                inspect.Parameter("message", inspect.Parameter.KEYWORD_ONLY, annotation=NatsMessageParam),
            ],
            return_annotation=None,
        )
        consume.__name__ = durable.replace("-", "_")
        self.broker.subscriber(
            subject,
            stream=WF_STREAM,
            durable=durable,
            pull_sub=PullSub(batch_size=self.policy.concurrency, timeout=1.0),
            ack_policy=AckPolicy.NACK_ON_ERROR,
            config=ConsumerConfig(
                durable_name=durable,
                ack_policy=JsAckPolicy.EXPLICIT,
                ack_wait=self.policy.ack_wait,
                max_deliver=self.policy.server_max_deliver,
                max_ack_pending=self.policy.max_ack_pending,
                deliver_policy=DeliverPolicy.ALL,
                filter_subject=subject,
            ),
            decoder=_decode_json,
            title=f"{durable}:{subject}",
            description=description or _summary(subject),
        )(consume)

    def document_catalogue(self) -> None:
        """Declare a publisher per catalogue subject so AsyncAPI lists every event, handled yet or not."""
        for spec in (*CATALOGUE, DEAD_LETTER):
            self.broker.publisher(
                spec.subject,
                stream=DLQ_JSTREAM if spec is DEAD_LETTER else WF_STREAM,
                title=f"{spec.subject}:publish",
                description=spec.summary,
                schema=DeadLetter if spec is DEAD_LETTER else Envelope[spec.payload],  # type: ignore[name-defined]
            )


async def _decode_json(message: NatsMessage) -> Any:
    """Structured CloudEvents arrive as application/cloudevents+json, which FastStream does not decode."""
    return json.loads(message.body)


def _summary(subject: str) -> str:
    spec: EventSpec | None = BY_SUBJECT.get(subject)
    return spec.summary if spec else subject


@contextlib.asynccontextmanager
async def _heartbeat(message: NatsMessage, interval: float) -> AsyncIterator[None]:
    """Keep a long handler's message from being redelivered to another worker while it is still busy."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await message.in_progress()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
