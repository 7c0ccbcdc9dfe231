"""The embedded dev stack: NATS JetStream, SecantusDB (MongoDB wire) and SeaweedFS S3 as local processes.

Stands alone: nothing here imports the project's other packages, and the servers are run as programs,
never imported (SecantusDB is GPL-2.0).
"""

from devstack.endpoints import StackEndpoints
from devstack.errors import StackError
from devstack.runner import run_stack
from devstack.stack import EmbeddedStack

__all__ = ["EmbeddedStack", "StackEndpoints", "StackError", "run_stack"]
