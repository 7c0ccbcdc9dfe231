"""`gxwf bench dashboard`, tiny: every client gets every event once, and the figures are printed."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from gxwf.bench_dashboard import run_benchmark
from gxwf.settings import Settings


async def test_bench_dashboard_delivers_every_event_to_every_client(settings: Settings) -> None:
    out = StringIO()
    report = await run_benchmark(settings, 200, 2, 3, console=Console(file=out, width=200), settle=20)
    assert report.published.count == 400
    assert len(report.clients) == 3 and report.complete, report.clients
    assert all(c.received == 400 and c.doubled == 0 for c in report.clients)
    assert 0 < report.latency_ms["p50"] <= report.latency_ms["p99"] <= report.latency_ms["max"]
    assert len(report.baseline.received) == 400 and report.rss_bytes
    text = out.getvalue()
    assert "400 / 400 of 400  all" in text and "publish -> browser SSE p50 / p99" in text
    assert "dashboard RSS MB" in text and "dashboard / raw: p99 latency" in text
