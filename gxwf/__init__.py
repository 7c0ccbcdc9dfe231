"""Entry points: the `gxwf` CLI, settings, and the composition root that wires adapters into handlers."""

__version__ = "0.1.0"
