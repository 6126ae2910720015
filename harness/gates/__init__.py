"""Governance gates: coverage, pinned dependencies, vulnerability audit and the environment record."""
