"""`gxwf bench ingress` measures both servers with the same clients and reports every callback as stored."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from gxwf.bench_ingress import WARMUP, run_benchmark
from gxwf.settings import Settings


async def test_bench_ingress_reports_both_servers_and_the_ratio(settings: Settings) -> None:
    out = StringIO()
    bare, ingress = await run_benchmark(settings, 150, 8, console=Console(file=out, width=200))
    assert (bare.requests, ingress.requests) == (150, 150)
    assert bare.failures == ingress.failures == 0
    assert len(ingress.latencies) == 150 and ingress.per_second > 0
    text = out.getvalue()
    assert "bare FastAPI route" in text and "edc ingress (acked by JetStream)" in text
    assert "ingress / bare: throughput" in text
    # Each callback is two events (the raw one and the typed TransferProcessStarted), each acked.
    assert f"{2 * (150 + WARMUP)} events stored by JetStream" in text
