"""A handler whose envelope does not carry the payload it is declared for does not type-check."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = """
from events.envelope import Envelope
from events.payloads.run import RunPending, RunRunning
from handlers.context import HandlerContext
from handlers.declare import on


@on(RunPending, durable="typing-right")
async def right(event: Envelope[RunPending], ctx: HandlerContext) -> None:
    pass


@on(RunPending, durable="typing-wrong")
async def wrong(event: Envelope[RunRunning], ctx: HandlerContext) -> None:
    pass
"""


def test_a_mis_wired_handler_is_a_mypy_error(tmp_path: Path) -> None:
    snippet = tmp_path / "miswired.py"
    snippet.write_text(SNIPPET)
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"), str(snippet)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1, out + err
    (error,) = errors
    assert "miswired.py:13:" in error and "RunRunning" in error and "RunPending" in error, error
