"""A real single-node Slurm cluster (Debian's Slurm 22.05) in one fresh directory, for tests and for trying it.

munged, slurmctld, slurmd and slurmrestd run as child processes of the caller on free loopback ports; the
node declares GPUs as a counted generic resource, so GPU placement is exercised on machines without one.
"""

from devstack.slurm.cluster import SlurmCluster, closed_ancestor, start_slurm
from devstack.slurm.packages import REQUIRED_PACKAGES, SlurmUnavailable

__all__ = ["REQUIRED_PACKAGES", "SlurmCluster", "SlurmUnavailable", "closed_ancestor", "start_slurm"]
