"""Fault points from configuration: `name=sleep:SECONDS` or `name=raise` entries, comma separated.

Off unless configured. Operators use them to rehearse failures; the crash and redelivery tests use them to
hold a handler at a known point while they kill its process.
"""

from __future__ import annotations

import asyncio


class ConfiguredFaults:
    def __init__(self, spec: str) -> None:
        self.actions: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, _, action = item.partition("=")
            if not name or not (action == "raise" or action.startswith("sleep:")):
                raise ValueError(f"fault point {item!r}: expected NAME=sleep:SECONDS or NAME=raise")
            if action.startswith("sleep:"):
                float(action.removeprefix("sleep:"))
            self.actions[name] = action

    async def reach(self, name: str) -> None:
        action = self.actions.get(name)
        if action is None:
            return
        if action == "raise":
            raise RuntimeError(f"fault injected at {name}")
        await asyncio.sleep(float(action.removeprefix("sleep:")))
