"""Runs as Slurm batch jobs, through slurmrestd (api.py holds the version-specific shapes)."""

from adapters.slurm_compute.backend import SlurmJobBackend, tokens_for

__all__ = ["SlurmJobBackend", "tokens_for"]
