"""The plot: the route in grey, the driven trajectory coloured by speed (blue slow, red fast), start and goal."""

from __future__ import annotations

import itertools

from carla_standin.png import Canvas, Color
from carla_standin.simulate import Point, Sample

WIDTH, HEIGHT, MARGIN = 800, 600, 40


def _speed_color(speed: float, top: float) -> Color:
    share = max(0.0, min(1.0, speed / top)) if top > 0 else 0.0
    return (int(40 + 215 * share), int(90 * (1 - abs(2 * share - 1))), int(255 * (1 - share)))


def plot(route: list[Point], samples: list[Sample]) -> Canvas:
    xs = [p[0] for p in route] + [s.x for s in samples]
    ys = [p[1] for p in route] + [s.y for s in samples]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-6)
    scale = min((WIDTH - 2 * MARGIN) / span, (HEIGHT - 2 * MARGIN) / span)
    left, bottom = min(xs), min(ys)

    def at(x: float, y: float) -> tuple[int, int]:
        return int(MARGIN + (x - left) * scale), int(HEIGHT - MARGIN - (y - bottom) * scale)

    canvas = Canvas(WIDTH, HEIGHT)
    frame: Color = (210, 214, 220)
    corners = [(MARGIN // 2, MARGIN // 2), (WIDTH - MARGIN // 2, MARGIN // 2)]
    corners += [(WIDTH - MARGIN // 2, HEIGHT - MARGIN // 2), (MARGIN // 2, HEIGHT - MARGIN // 2)]
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        canvas.line(a, b, frame)
    for p, q in itertools.pairwise(route):
        canvas.line(at(*p), at(*q), (170, 170, 170), radius=3)
    top = max((s.speed for s in samples), default=0.0)
    for before, after in itertools.pairwise(samples):
        canvas.line(at(before.x, before.y), at(after.x, after.y), _speed_color(after.speed, top), radius=1)
    canvas.dot(*at(*route[0]), (31, 138, 76), radius=6)
    canvas.dot(*at(*route[-1]), (0, 0, 0), radius=6)
    return canvas
