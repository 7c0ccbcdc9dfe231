"""A CPU stand-in for the CARLA minimal example: a vehicle driven along a route, its trajectory and a plot.

The real asset (deploy/assets/gpu/carla-minimal.yaml) needs a CARLA server on a GPU. This one needs only Python's
standard library, so the local backend can run the same story: a route goes in, a trajectory CSV, a PNG plot
and driving metrics come out. Run it as `python -m carla_standin --route ROUTE --out DIR`.
"""
