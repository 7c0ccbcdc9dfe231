"""The CLI's one kind of expected failure."""


class CommandError(Exception):
    """Bad input or an unusable answer: printed as one line, exit status 2, never a traceback."""
