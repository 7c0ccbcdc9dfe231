"""How the pages show durations and times: Jinja filters of the dashboard's templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.templating import Jinja2Templates

from events.redaction import redact_text


def duration(value: float | None) -> str:
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def timestamp(value: Any) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z") if isinstance(value, datetime) else ""


def install_filters(templates: Jinja2Templates) -> None:
    templates.env.filters["duration"] = duration
    templates.env.filters["ts"] = timestamp
    # Secrets inside texts (errors, log lines) are masked wherever a page shows one.
    templates.env.filters["scrub"] = redact_text
