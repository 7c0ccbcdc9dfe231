"""`gxwf bench ingress` measures both servers with the same clients and reports every callback as stored."""

from __future__ import annotations

from io import StringIO

import pytest
from rich.console import Console

from gxwf.bench_dps import run_started_latency
from gxwf.bench_ingress import NO_DATAFLOWS, WARMUP, run_benchmark
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


async def test_bench_ingress_dps_start_messages(settings: Settings) -> None:
    """`--dps`: start messages until 202 on both servers; an ingress without /dataflows is named instead."""
    out = StringIO()
    results = await run_benchmark(settings, 150, 8, console=Console(file=out, width=200), dps=True)
    text = out.getvalue()
    if not results:
        assert NO_DATAFLOWS in text, text
        return
    bare, ingress = results
    assert bare.failures == ingress.failures == 0 and len(ingress.latencies) == 150
    assert "POST /dataflows/start (until 202): 150 requests from 8 concurrent clients" in text
    assert "bare FastAPI route (202 at once)" in text and "non-202" in text


@pytest.mark.slow
async def test_bench_start_to_started_on_the_local_site() -> None:
    """The second part runs a whole system: every transfer started is called back `started` (timed)."""
    out = StringIO()
    measured = await run_started_latency(6, 3, 2, console=Console(file=out, width=200))
    text = out.getvalue()
    if not measured and NO_DATAFLOWS in text:
        assert "start-to-started latency not measured" in text
        pytest.skip("the ingress has no /dataflows route yet")
    assert measured, text
    assert "start -> started callback: 6 transfers of 2 consumers on the local site, 3 at a time" in text
