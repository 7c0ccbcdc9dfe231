"""Implementations of the ports, chosen at start-up: MongoDB store, compute backends, fault points."""
