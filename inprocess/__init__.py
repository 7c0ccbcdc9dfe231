"""The fast test tier's machinery: every declared handler in one process on in-memory ports, driven step by step.

Test infrastructure, like fakekube: no production package imports it (an import-linter contract)."""
