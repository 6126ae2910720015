"""Serena's proof machinery: golden outputs, invariants and governance gates, reachable through `serena-verify`."""
