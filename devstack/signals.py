"""SIGINT and SIGTERM as an asyncio event, for as long as a stack wants them."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self) -> None:
        self.received = asyncio.Event()
        self.signum: int | None = None
        self._callbacks: list[Callable[[], object]] = []
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        """Route the signals to this object; where the loop cannot (not the main thread), leave them be."""
        loop = asyncio.get_running_loop()
        for sig in _STOP_SIGNALS:
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (RuntimeError, ValueError, NotImplementedError):
                continue
            self._previous[sig] = previous

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig, previous in self._previous.items():
            loop.remove_signal_handler(sig)
            # remove_signal_handler resets to the default, which would drop e.g. asyncio.run's own
            # Ctrl-C handling; put back whatever was there before.
            if previous is not None:
                signal.signal(sig, previous)
        self._previous.clear()

    def on_signal(self, callback: Callable[[], object]) -> None:
        self._callbacks.append(callback)

    def clear_callbacks(self) -> None:
        self._callbacks.clear()

    def _on_signal(self, sig: signal.Signals) -> None:
        self.signum = int(sig)
        self.received.set()
        for callback in self._callbacks:
            callback()
