"""The pull fetch shim: a bare timeout from nats-py reaches FastStream's pull loop as the error it suppresses."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest

from events import nats_compat


async def test_a_bare_timeout_from_fetch_becomes_the_nats_timeout_and_others_pass_through() -> None:
    installed = nats_compat._PullSubscription.fetch
    outcomes: list[BaseException] = [TimeoutError(), nats.errors.TimeoutError(), ConnectionError("down")]

    async def fake_fetch(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise outcomes.pop(0)

    nats_compat._PullSubscription.fetch = fake_fetch
    try:
        nats_compat.install()
        fetch = nats_compat._PullSubscription.fetch
        with pytest.raises(nats.errors.TimeoutError) as bare:
            await fetch(None, 1, timeout=0.1)
        assert isinstance(bare.value.__cause__, TimeoutError)
        with pytest.raises(nats.errors.TimeoutError) as already:
            await fetch(None, 1)
        assert already.value.__cause__ is None, "nats-py's own error is passed on as it is"
        with pytest.raises(ConnectionError):
            await fetch(None, 1)
        nats_compat.install()
        assert nats_compat._PullSubscription.fetch is fetch, "installing twice wraps once"
    finally:
        nats_compat._PullSubscription.fetch = installed
