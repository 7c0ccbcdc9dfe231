"""run_stack: the foreground life of a stack, for `python -m devstack` and `gxwf stack up`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sys
from pathlib import Path
from typing import Any

from devstack.access import without_user
from devstack.credentials import write_private
from devstack.endpoints import StackEndpoints
from devstack.errors import StackError
from devstack.signals import StopSignals
from devstack.stack import EmbeddedStack

STACK_FILE = "stack.json"


async def run_stack(state_dir: Path, **kwargs: Any) -> int:
    """Start, write STATE_DIR/stack.json, run until SIGINT/SIGTERM, stop. Returns the exit status.

    0 after a stop on request; 1 when a server fails to start or dies; 128 + the signal number when
    stopped before everything was ready. stack.json is removed on a clean stop, so its presence means
    running (or killed without a chance to clean up: check the pids).
    """
    try:
        stack = EmbeddedStack(state_dir, **kwargs)
    except StackError as error:
        _say(f"error: {error}")
        return 1
    signals = StopSignals()
    signals.install()
    try:
        starting = asyncio.ensure_future(stack.start())
        # During start-up a signal abandons the start; start() then stops what it had started.
        signals.on_signal(starting.cancel)
        try:
            endpoints = await starting
        except asyncio.CancelledError:
            if signals.signum is None:
                raise
            _say("stopped before the stack was ready")
            return 128 + signals.signum
        except StackError as error:
            _say(f"error: {error}")
            return 1
        signals.clear_callbacks()
        stack_file = _write_stack_file(state_dir, endpoints)
        # A restarted server has a new pid: the file keeps naming the live ones.
        stack.on_restarted = functools.partial(_rewrite_stack_file, state_dir)
        try:
            _report(stack, endpoints, stack_file)
            await stack.wait_until_signalled(signals)
            status = 0
        except StackError as error:
            _say(f"error: {error}")
            status = 1
        finally:
            await stack.stop()
            _remove(stack_file)
        _say("stopped")
        return status
    finally:
        signals.remove()


def _write_stack_file(state_dir: Path, endpoints: StackEndpoints) -> Path:
    path = Path(state_dir).absolute() / STACK_FILE
    # Readers poll for this file: write_private renames it into place, never half written; 0600, it has secrets.
    write_private(path, json.dumps(endpoints.to_json(), indent=2) + "\n")
    return path


def _rewrite_stack_file(state_dir: Path, endpoints: StackEndpoints) -> None:
    _write_stack_file(state_dir, endpoints)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _report(stack: EmbeddedStack, endpoints: StackEndpoints, stack_file: Path) -> None:
    _say(f"stack ready in {stack.startup_seconds or 0.0:.1f}s")
    nats_urls = endpoints.nats.split(",")
    if len(nats_urls) > 1 and len(endpoints.nats_monitors) == len(nats_urls):
        # The nodes of the embedded cluster, each on its own line.
        nats_rows = [
            (f"nats-{node}", url, f"monitor {monitor}")
            for node, (url, monitor) in enumerate(zip(nats_urls, endpoints.nats_monitors, strict=True), start=1)
        ]
    else:
        nats_rows = [("nats", endpoints.nats, f"monitor {endpoints.nats_monitor}" if endpoints.nats_monitor else "")]
    rows = [*nats_rows, ("mongo", endpoints.mongo, ""), ("s3", endpoints.s3, f"bucket {endpoints.s3_bucket}")]
    width = max(len(role) for role, _, _ in rows)
    for role, url, extra in rows:
        pid = endpoints.pids.get(role)
        origin = f"pid {pid}" if pid is not None else "external"
        shown = ",".join(without_user(part) for part in url.split(","))
        _say("  ".join(part for part in (f"  {role:<{width}}", shown, extra, f"({origin})") if part))
    _say(f"endpoints and credentials in {stack_file}; Ctrl-C or SIGTERM stops the stack")


def _say(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr, flush=True)
