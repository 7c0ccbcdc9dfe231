"""The one exception the embedded stack raises to its callers."""

from __future__ import annotations


class StackError(Exception):
    """A server of the embedded stack could not be found, started, kept running or stopped.

    The message is a single line meant for the person running the stack: what failed and, where the
    server said why, the relevant lines of its log.
    """
