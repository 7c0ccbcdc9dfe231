"""Which delivery of its event a handler runs in, so a handler can tell its last try from one the bus retries.

Set by the delivery middleware around each handler call; plain data, so handlers (which may not know the
broker) can read it. Outside the bus (a handler called directly) there is none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


class AheadOfState(Exception):
    """The event came before the state it depends on (another consumer of the same fact has not applied it yet).

    The bus delivers it again after its backoff like any failure, but says so quietly: this is ordering between
    independent consumers, not an error. Still ahead on the last try, it is dead-lettered as usual."""


@dataclass(frozen=True)
class Delivery:
    attempt: int
    max_attempts: int

    @property
    def last(self) -> bool:
        """No retry follows a failure of this try: it goes to the dead-letter subject."""
        return self.attempt >= self.max_attempts


_current: ContextVar[Delivery | None] = ContextVar("gxwf_delivery", default=None)


def current_delivery() -> Delivery | None:
    return _current.get()


@contextlib.contextmanager
def delivering(delivery: Delivery) -> Iterator[None]:
    token = _current.set(delivery)
    try:
        yield
    finally:
        _current.reset(token)
