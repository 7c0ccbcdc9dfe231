"""A kinematic bicycle model driven by pure pursuit along the route, with speed planned from its curvature."""

from __future__ import annotations

import math
from dataclasses import dataclass

Point = tuple[float, float]


@dataclass(frozen=True)
class Vehicle:
    wheelbase_m: float = 2.9
    max_steer_rad: float = math.radians(35)
    max_accel: float = 3.0  # m/s²
    max_decel: float = 6.0
    max_lateral_accel: float = 2.5  # comfort limit that sets the speed in curves


@dataclass(frozen=True)
class Sample:
    t: float
    x: float
    y: float
    heading: float
    speed: float
    steer: float
    cross_track: float


def _nearest(route: list[Point], x: float, y: float, start: int) -> tuple[int, float]:
    """Index of the segment nearest to (x, y), searched forward from `start`, and the distance to it."""
    best, best_d = start, math.inf
    for i in range(start, min(len(route) - 1, start + 50)):
        (ax, ay), (bx, by) = route[i], route[i + 1]
        dx, dy = bx - ax, by - ay
        length2 = dx * dx + dy * dy
        u = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / length2)) if length2 else 0.0
        d = math.hypot(ax + u * dx - x, ay + u * dy - y)
        if d < best_d:
            best, best_d = i, d
    return best, best_d


def _lookahead(route: list[Point], index: int, x: float, y: float, distance: float) -> Point:
    for i in range(index, len(route)):
        if math.hypot(route[i][0] - x, route[i][1] - y) >= distance:
            return route[i]
    return route[-1]


def _curvature(route: list[Point], index: int) -> float:
    if index <= 0 or index >= len(route) - 1:
        return 0.0
    a, b, c = route[index - 1], route[index], route[index + 1]
    ab, bc, ca = math.dist(a, b), math.dist(b, c), math.dist(c, a)
    area2 = abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    return 2 * area2 / (ab * bc * ca) if ab * bc * ca > 1e-9 else 0.0


def drive(
    route: list[Point],
    *,
    speed_limit: float = 13.9,
    dt: float = 0.05,
    max_seconds: float = 3600.0,
    vehicle: Vehicle | None = None,
) -> tuple[list[Sample], bool]:
    """The trajectory from the first waypoint to the last (or until `max_seconds`), and whether it arrived."""
    car = vehicle or Vehicle()
    x, y = route[0]
    heading = math.atan2(route[1][1] - y, route[1][0] - x)
    speed, t, index = 0.0, 0.0, 0
    samples: list[Sample] = []
    goal = route[-1]
    arrived = False
    while t <= max_seconds:
        index, cross = _nearest(route, x, y, index)
        # The speed this stretch allows: the curvature ahead, and stopping at the goal.
        ahead = max(_curvature(route, j) for j in range(index, min(len(route), index + 4)))
        curve_speed = math.sqrt(car.max_lateral_accel / ahead) if ahead > 1e-6 else speed_limit
        to_goal = math.hypot(goal[0] - x, goal[1] - y)
        stop_speed = math.sqrt(2 * car.max_decel * 0.5 * max(to_goal - 0.5, 0.0))
        target = min(speed_limit, curve_speed, stop_speed)
        accel = max(-car.max_decel, min(car.max_accel, (target - speed) / dt))
        tx, ty = _lookahead(route, index + 1, x, y, max(4.0, 0.8 * speed))
        alpha = math.atan2(ty - y, tx - x) - heading
        alpha = math.atan2(math.sin(alpha), math.cos(alpha))
        distance = max(math.hypot(tx - x, ty - y), 1e-6)
        steer = max(
            -car.max_steer_rad, min(car.max_steer_rad, math.atan2(2 * car.wheelbase_m * math.sin(alpha), distance))
        )
        samples.append(Sample(round(t, 4), x, y, heading, speed, steer, cross))
        if to_goal < 0.75 and speed < 0.3:
            arrived = True
            break
        speed = max(0.0, speed + accel * dt)
        x += speed * math.cos(heading) * dt
        y += speed * math.sin(heading) * dt
        heading += speed / car.wheelbase_m * math.tan(steer) * dt
        t += dt
    return samples, arrived
