"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from devstack import EmbeddedStack, StackEndpoints
from gxwf.stack_users import nats_users

# Most tests request runs of commands of their own, without putting an asset into the catalogue first: the
# handlers they start (also as `gxwf` subprocesses, which inherit this) accept such ad-hoc runs. The tests of
# the catalogue-only rule set it off for their own handlers.
os.environ.setdefault("GXWF_ADHOC_RUNS", "true")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stack() -> AsyncIterator[StackEndpoints]:
    """One set of real servers for the whole run, in a throwaway directory.

    GXWF_NATS_URL, GXWF_MONGO_URL and GXWF_S3_ENDPOINT point the tests at servers of your own instead;
    only the ones not given are started. The servers started require credentials: `stack.nats` is NATS's
    unrestricted user, `stack.nats_for(component)` a component's, `stack.s3_credentials` the S3 keys.
    """
    if os.environ.get("GXWF_FAST_TIER"):
        pytest.fail("the fast tier starts no servers: mark this test `servers` (tests/conftest.py)")
    embedded = EmbeddedStack(
        None,
        nats_url=os.environ.get("GXWF_NATS_URL"),
        mongo_url=os.environ.get("GXWF_MONGO_URL"),
        s3_endpoint=os.environ.get("GXWF_S3_ENDPOINT"),
        # A user per component, with its permissions: the fixtures that start a component give it its own.
        nats_users=nats_users(),
    )
    async with embedded as endpoints:
        yield endpoints


# Modules that start servers of their own (the embedded stack, `gxwf up`, a browser) rather than through `stack`.
_OWN_SERVERS = (
    "tests/backbone/",
    "tests/devstack/",
    "tests/readme/",
    "tests/cli/test_up.py",
    "tests/cli/test_up_supervision.py",
    "tests/cli/test_events_tail.py",
    "tests/cli/test_edc_trial.py",
    "tests/cli/test_live_commands.py",
    "tests/dashboard/test_browser.py",
    "tests/dashboard/test_cli.py",
    "tests/edc_ingress/test_cli.py",
    "tests/edc_simulator/test_stories.py",
    "tests/workflow_api/test_client_cli.py",
    "tests/workflow_api/test_bench_data.py",
)
_ROOT = Path(__file__).parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need servers carry the `servers` marker, so the fast tier (`make test-fast`) leaves them out."""
    for item in items:
        path = Path(str(item.path)).relative_to(_ROOT).as_posix()
        if "stack" in getattr(item, "fixturenames", ()) or path.startswith(_OWN_SERVERS):
            item.add_marker(pytest.mark.servers)
