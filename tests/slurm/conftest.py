"""A real single-node Slurm cluster (Debian's Slurm 22.05 daemons) for the tests of this directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.slurm import SlurmCluster, SlurmUnavailable, start_slurm


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the cluster start servers, so the fast tier (`make test-fast`) leaves them out."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.servers)


def slurm_directory() -> Path:
    """A new directory for a cluster: below /tmp, not pytest's base directory, which only root may enter
    (slurmrestd runs as nobody and must read the cluster's slurm.conf)."""
    directory = Path(tempfile.mkdtemp(prefix="gxwf-slurm-"))
    directory.chmod(0o755)
    return directory


def start_or_fail(directory: Path) -> SlurmCluster:
    """The cluster; missing Debian packages fail the test with the message that names them (CI installs them)."""
    try:
        return start_slurm(directory)
    except SlurmUnavailable as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """One cluster for the whole run: 16 CPUs, 2 GPUs (counted, no device), REST on a free loopback port.

    Fails, never skips, when Debian's Slurm packages are missing: the message names them (`.ci/run` installs
    them). The cluster is stopped with its jobs cancelled at the end of the run.
    """
    if os.environ.get("GXWF_FAST_TIER"):
        pytest.fail("the fast tier starts no servers: a test using slurm_cluster is marked `servers`")
    base = slurm_directory()
    try:
        cluster = start_or_fail(base / "cluster")
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
