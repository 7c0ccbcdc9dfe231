"""The CLI's commands, one module per command group; gxwf/cli.py assembles them.

Each module imports only what its options need at import time (Typer, Rich, settings): servers, drivers and
services are imported inside the commands, so `gxwf --help` and a mistyped option answer at once.
"""
