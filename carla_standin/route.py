"""Routes: waypoints as CSV lines `x,y` (metres; a header line and # comments allowed) or JSON
`{"waypoints": [[x, y], ...]}`."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

MAX_WAYPOINTS = 10_000
MAX_COORDINATE = 1e6


class RouteError(ValueError):
    pass


def _point(values: list[object], where: str) -> tuple[float, float]:
    if len(values) < 2:
        raise RouteError(f"{where}: a waypoint needs x and y")
    try:
        x, y = float(str(values[0])), float(str(values[1]))
    except ValueError:
        raise RouteError(f"{where}: x and y must be numbers, got {values[0]!r}, {values[1]!r}") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for v in (x, y)):
        raise RouteError(f"{where}: coordinates must be finite and within ±{MAX_COORDINATE:g} m")
    return x, y


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_route(text: str) -> list[tuple[float, float]]:
    stripped = text.strip()
    points: list[tuple[float, float]] = []
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            document = json.loads(stripped)
        except ValueError as error:
            raise RouteError(f"route: not valid JSON ({error})") from None
        raw = document.get("waypoints") if isinstance(document, dict) else document
        if not isinstance(raw, list):
            raise RouteError('route: JSON needs {"waypoints": [[x, y], ...]}')
        for index, item in enumerate(raw[: MAX_WAYPOINTS + 1]):
            if not isinstance(item, list | tuple):
                raise RouteError(f"route: waypoints[{index}]: expected [x, y]")
            points.append(_point(list(item), f"route: waypoints[{index}]"))
    else:
        header_seen = False
        for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not row or row[0].strip().startswith("#"):
                continue
            if not points and not header_seen and not _number(row[0]):
                header_seen = True  # the first row names the columns
                continue
            points.append(_point([cell.strip() for cell in row], f"route: line {number}"))
            if len(points) > MAX_WAYPOINTS:
                break
    if len(points) > MAX_WAYPOINTS:
        raise RouteError(f"route: at most {MAX_WAYPOINTS} waypoints")
    # Repeated points give no direction to drive in.
    deduplicated = [p for i, p in enumerate(points) if i == 0 or math.dist(p, points[i - 1]) > 1e-6]
    if len(deduplicated) < 2:
        raise RouteError("route: needs at least two distinct waypoints")
    return deduplicated


def load_route(path: Path) -> list[tuple[float, float]]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise RouteError(f"route: cannot read {path}: {error}") from None
    return parse_route(text)
