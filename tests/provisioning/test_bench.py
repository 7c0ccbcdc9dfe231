"""`gxwf bench provisioning` on the session's servers: every consumer granted, then nothing left behind."""

from __future__ import annotations

import io

from rich.console import Console

from gxwf.bench_provisioning import run_benchmark
from gxwf.settings import Settings


async def test_bench_provisioning_prints_its_figures(settings: Settings) -> None:
    out = io.StringIO()
    await run_benchmark(settings, 3, "kubernetes", console=Console(file=out, width=200), timeout=60)
    text = out.getvalue()
    assert "request -> access granted" in text and "deprovision -> deprovisioned" in text
    assert "granted 3, failed 0; Kubernetes API calls per consumer" in text and "namespaces left 0" in text
