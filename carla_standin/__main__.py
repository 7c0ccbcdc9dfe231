"""`python -m carla_standin --route ROUTE --out DIR`: trajectory.csv, trajectory.png and metrics.json in DIR."""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import sys
from pathlib import Path

from carla_standin.plot import plot
from carla_standin.route import RouteError, load_route
from carla_standin.simulate import drive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carla_standin", description=__doc__)
    parser.add_argument("--route", type=Path, required=True, help="waypoints: CSV x,y lines or JSON")
    parser.add_argument("--out", type=Path, required=True, help="directory for the outputs")
    # Parameters of the asset arrive as environment variables; the options win when both are given.
    parser.add_argument("--speed-limit", type=float, default=float(os.environ.get("SPEED_LIMIT", "13.9")))
    parser.add_argument("--dt", type=float, default=float(os.environ.get("STEP_SECONDS", "0.05")))
    parser.add_argument("--max-seconds", type=float, default=float(os.environ.get("MAX_SECONDS", "3600")))
    args = parser.parse_args(argv)
    for name, value, low, high in (
        ("--speed-limit", args.speed_limit, 0.5, 100.0),
        ("--dt", args.dt, 0.001, 1.0),
        ("--max-seconds", args.max_seconds, 1.0, 86400.0),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            print(f"carla_standin: error: {name} must be between {low} and {high}", file=sys.stderr)
            return 2
    try:
        route = load_route(args.route)
    except RouteError as error:
        print(f"carla_standin: error: {error}", file=sys.stderr)
        return 2
    print(
        f"route: {len(route)} waypoints, {sum(math.dist(a, b) for a, b in itertools.pairwise(route)):.1f} m",
        flush=True,
    )
    samples, arrived = drive(route, speed_limit=args.speed_limit, dt=args.dt, max_seconds=args.max_seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "trajectory.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t_s", "x_m", "y_m", "heading_rad", "speed_mps", "steer_rad", "cross_track_m"])
        for s in samples:
            writer.writerow(
                [
                    f"{s.t:.3f}",
                    f"{s.x:.3f}",
                    f"{s.y:.3f}",
                    f"{s.heading:.4f}",
                    f"{s.speed:.3f}",
                    f"{s.steer:.4f}",
                    f"{s.cross_track:.3f}",
                ]
            )
    plot(route, samples).save(args.out / "trajectory.png")
    driven = sum(math.hypot(b.x - a.x, b.y - a.y) for a, b in itertools.pairwise(samples))
    metrics = {
        "arrived": arrived,
        "duration_s": round(samples[-1].t, 3),
        "distance_m": round(driven, 2),
        "mean_speed_mps": round(driven / samples[-1].t, 3) if samples[-1].t > 0 else 0.0,
        "max_speed_mps": round(max(s.speed for s in samples), 3),
        "max_cross_track_m": round(max(s.cross_track for s in samples), 3),
        "samples": len(samples),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"{'arrived' if arrived else 'did not arrive'} after {metrics['duration_s']} s, {metrics['distance_m']} m",
        flush=True,
    )
    return 0 if arrived else 1


if __name__ == "__main__":
    sys.exit(main())
