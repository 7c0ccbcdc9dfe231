"""How a handler module says what it reacts to, beside the code that reacts.

`@on(Payload, durable=...)` makes a function a durable subscriber of the payload's subject; `@every(...)` and
`@every_loop(...)` make it a periodic pass. Importing a handler module fills the registry below, from which
handlers.subscriptions builds the subscription table, the composition root its subscribers and loops, and
AsyncAPI its receive operations. The group is the handler package (`handlers.jobs.start` -> `jobs`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from events.envelope import SOURCE, Envelope
from events.payloads.common import Payload
from handlers.context import HandlerContext

P = TypeVar("P", bound=Payload)

HandlerFn = Callable[[Envelope[Any], HandlerContext], Awaitable[None]]
Step = Callable[[HandlerContext], Awaitable[int]]


class Loop(Protocol):
    """A periodic pass that keeps state between passes (the log shipper's follows)."""

    async def pass_once(self) -> int: ...

    async def close(self) -> None: ...


LoopFactory = Callable[[HandlerContext], Loop]
L = TypeVar("L", bound=LoopFactory)
S = TypeVar("S", bound=Step)


@dataclass(frozen=True)
class Subscription:
    group: str
    durable: str
    subject: str
    payload: type[Payload]
    handle: HandlerFn
    # The handler acts on this process's compute site only: every site gets its own durable consumer (the
    # durable name with the site appended), so each site's handlers see every event and take their own.
    per_site: bool = False

    def durable_on(self, site: str | None) -> str:
        """The JetStream consumer name this subscription takes in a process of `site` (also what autoscalers
        measure the lag of)."""
        return f"{self.durable}-{site}" if self.per_site and site else self.durable


@dataclass(frozen=True)
class Periodic:
    group: str
    name: str
    # The Settings field holding the pause between passes, read by the composition root (handlers cannot
    # import settings).
    interval: str
    start: LoopFactory


_SUBSCRIPTIONS: dict[str, Subscription] = {}
_PERIODIC: dict[str, Periodic] = {}
_ORIGINS: dict[tuple[int, str], str] = {}


def on(
    payload: type[P], *, durable: str, per_site: bool = False
) -> Callable[
    [Callable[[Envelope[P], HandlerContext], Awaitable[None]]],
    Callable[[Envelope[P], HandlerContext], Awaitable[None]],
]:
    """Subscribe the function to `payload`'s subject under the durable consumer `durable`; a function whose
    envelope is of another payload is a type error."""
    if not payload.subject:
        raise TypeError(f"{payload.__qualname__} names no subject: only event payloads can be subscribed to")

    def declare(
        handle: Callable[[Envelope[P], HandlerContext], Awaitable[None]],
    ) -> Callable[[Envelope[P], HandlerContext], Awaitable[None]]:
        _register(
            _SUBSCRIPTIONS,
            durable,
            Subscription(_group(handle), durable, payload.subject, payload, handle, per_site),
            handle,
        )
        return handle

    return declare


def every(*, interval: str, name: str) -> Callable[[S], S]:
    """Run the function every `interval` (a Settings field) seconds in processes of its group."""

    def declare(step: S) -> S:
        _register(_PERIODIC, name, Periodic(_group(step), name, interval, _StepLoop.factory(step)), step)
        return step

    return declare


def every_loop(*, interval: str, name: str) -> Callable[[L], L]:
    """Like `every`, for a pass that keeps state: `make(ctx)` builds it once, the runtime closes it at stop."""

    def declare(make: L) -> L:
        _register(_PERIODIC, name, Periodic(_group(make), name, interval, make), make)
        return make

    return declare


def source_of(name: str) -> str:
    """The CloudEvents source of what a handler group or a periodic pass (by its name) emits."""
    return f"{SOURCE}:{name}"


def subscriptions() -> tuple[Subscription, ...]:
    """Every subscription declared by the handler modules imported so far."""
    return tuple(_SUBSCRIPTIONS.values())


def periodic() -> tuple[Periodic, ...]:
    return tuple(_PERIODIC.values())


class _StepLoop:
    def __init__(self, step: Step, ctx: HandlerContext) -> None:
        self.step = step
        self.ctx = ctx

    @classmethod
    def factory(cls, step: Step) -> LoopFactory:
        return lambda ctx: cls(step, ctx)

    async def pass_once(self) -> int:
        return await self.step(self.ctx)

    async def close(self) -> None:
        return None


def _group(fn: Callable[..., Any]) -> str:
    parts = fn.__module__.split(".")
    if len(parts) < 3 or parts[0] != "handlers":
        raise ValueError(f"{fn.__module__}.{fn.__qualname__}: declare handlers in a module of a handlers package")
    return parts[1]


def _register(table: dict[str, Any], name: str, entry: Subscription | Periodic, declared: Callable[..., Any]) -> None:
    # JetStream keeps one consumer per durable name: two handlers sharing one would each see half the events.
    origin = f"{declared.__module__}.{declared.__qualname__}"
    known = _ORIGINS.setdefault((id(table), name), origin)
    if known != origin:
        raise ValueError(f"{name!r} is declared twice: by {known} and by {origin}")
    table[name] = entry
